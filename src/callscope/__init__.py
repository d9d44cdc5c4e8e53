"""callscope: on-premises call recording and call-log analysis server for city halls."""

__version__ = "0.1.0"
