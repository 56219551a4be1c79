"""A real SMTP server for the portal's mail tests: aiosmtpd (Debian's
python3-aiosmtpd), configured from the command line, on loopback.

Each mail it takes is written to OUT/N.eml: the envelope as X-Envelope-From
and X-Envelope-To lines, then the message as received. With --cert/--key
it offers STARTTLS and requires it (with --implicit, TLS from the first
byte instead); with --user/--password it requires AUTH
(over TLS) and takes only that login. It prints "ready" once listening and
stops when its standard input closes.
"""

import argparse
import os
import ssl
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--implicit", action="store_true")
    ap.add_argument("--user")
    ap.add_argument("--password")
    args = ap.parse_args()

    class Handler:
        count = 0

        async def handle_DATA(self, server, session, envelope):
            Handler.count += 1
            path = os.path.join(args.out, "%d.eml" % Handler.count)
            head = "X-Envelope-From: %s\r\nX-Envelope-To: %s\r\n" % (
                envelope.mail_from,
                ",".join(envelope.rcpt_tos),
            )
            with open(path + ".part", "wb") as f:
                f.write(head.encode() + envelope.original_content)
            os.rename(path + ".part", path)
            return "250 OK: taken as %d" % Handler.count

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == args.user.encode()
            and auth_data.password == args.password.encode()
        )
        print("auth %s %s" % (mechanism, "accepted" if ok else "refused"), flush=True)
        return AuthResult(success=ok, handled=False)

    kwargs = {}
    if args.cert:
        tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        tls.load_cert_chain(args.cert, args.key)
        if args.implicit:
            kwargs.update(ssl_context=tls)
        else:
            kwargs.update(tls_context=tls, require_starttls=True)
    if args.user:
        kwargs.update(
            authenticator=authenticator,
            auth_required=True,
            auth_require_tls=bool(args.cert),
        )
    controller = Controller(
        Handler(),
        hostname="127.0.0.1",
        port=args.port,
        server_hostname="smtp.test",
        **kwargs,
    )
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
