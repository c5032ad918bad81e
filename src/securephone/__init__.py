"""securephone: a secure SIP phone (SIP over TLS, SRTP) that proves its encryption on the wire."""

__version__ = "0.1.0"
