"""The CLI's exit codes; scripts may rely on them (client/README.md lists them too)."""

OK = 0  # done; with --wait/--follow, the job or run succeeded
API_ERROR = 1  # the API refused or failed the request (the message has its code)
USAGE = 2  # bad arguments or configuration (no API key, unknown profile...)
TIMEOUT = 3  # --wait/--follow ran past --timeout; the job goes on (stdout has its last state)
UNREACHABLE = 4  # the server could not be reached
UNSUCCESSFUL = 5  # waited, and the job, training or run ended failed, failed_quality or canceled
INTERRUPTED = 130  # Ctrl-C
