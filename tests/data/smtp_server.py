"""An SMTP server for the tests (issue 22 finding 10): STARTTLS required, AUTH required
over TLS, messages into a maildir. Prints "ready" once listening; runs until its
standard input closes.

usage: smtp_server.py HOST PORT CERT_PEM KEY_PEM MAILDIR USER PASSWORD
"""
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import AuthResult, LoginPassword

host, port, cert, key, maildir, user, password = sys.argv[1:8]
tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
tls.load_cert_chain(cert, key)


def authenticate(server, session, envelope, mechanism, auth_data):
    ok = (
        isinstance(auth_data, LoginPassword)
        and auth_data.login.decode() == user
        and auth_data.password.decode() == password
    )
    # handled=False: aiosmtpd then answers 535 itself (its default is to say nothing).
    return AuthResult(success=ok, handled=False)


controller = Controller(
    Mailbox(maildir),
    hostname=host,
    port=int(port),
    tls_context=tls,
    require_starttls=True,
    authenticator=authenticate,
    auth_required=True,
    auth_require_tls=True,
)
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
