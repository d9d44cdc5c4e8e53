"""The Django app that keeps what was recorded: calls, streams, recordings, the number
directory and legal holds; the audio store (local filesystem or S3-compatible object
store); the `do_*` actions that change state and write their audit row in one transaction;
and retention.
"""
