#!/usr/bin/env python
"""Django's command-line utility for Fluence Portal."""

import os
import sys

# Commands that run without the portal's settings (and so without its secrets).
SANDBOX_COMMAND = "runsandbox"


def settings_module(argv: list[str]) -> str:
    """The fake Fluence API needs no secret: `runsandbox` (and `help runsandbox`) use its own settings."""
    words = [word for word in argv[1:3] if not word.startswith("-")]
    if words[:1] == [SANDBOX_COMMAND] or words[:2] == ["help", SANDBOX_COMMAND]:
        return "fluence_portal.settings_sandbox"
    return "fluence_portal.settings"


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module(sys.argv))
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
