"""The domain exceptions. Each carries the exit code from cli.md; the CLI
catches them in one place and prints their one-line message."""


class DiversionError(Exception):
    exit_code = 1

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class Refused(DiversionError):
    """A rule refused the request (not eligible, illegal transition). Nothing written."""

    exit_code = 1


class BadInput(DiversionError):
    """A value the user gave is malformed. Nothing written."""

    exit_code = 2

    def __init__(self, field: str, problem: str):
        super().__init__(f"{field}: {problem}" if field else problem)
        self.field, self.problem = field, problem


class NotFound(DiversionError):
    exit_code = 3


class StoreUnusable(DiversionError):
    """Locked past the timeout, corrupt, or written by a newer version."""

    exit_code = 4


class NotPermitted(DiversionError):
    """The signed-in login's role may not do this (a shared server). Nothing written."""

    exit_code = 5
