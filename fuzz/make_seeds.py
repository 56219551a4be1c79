#!/usr/bin/env python3
"""Writes the seed corpora under fuzz/corpus/<target>/ (run from anywhere).

leap_line and relay_frame start from the protocol vectors in proto/vectors/;
txt_record and sim_csr from records and requests made here (CSRs with
openssl). Rerun after the vectors change; the output is small and committed.
"""
import pathlib
import struct
import subprocess
import tempfile

ROOT = pathlib.Path(__file__).resolve().parent.parent
CORPUS = ROOT / "fuzz" / "corpus"


def write(target, name, data):
    d = CORPUS / target
    d.mkdir(parents=True, exist_ok=True)
    (d / name).write_bytes(data)


def der(tag, content):
    n = len(content)
    if n < 0x80:
        head = bytes([n])
    else:
        b = n.to_bytes((n.bit_length() + 7) // 8, "big")
        head = bytes([0x80 | len(b)]) + b
    return bytes([tag]) + head + content


def oid(dotted):
    parts = [int(p) for p in dotted.split(".")]
    out = bytes([40 * parts[0] + parts[1]])
    for p in parts[2:]:
        enc = [p & 0x7F]
        p >>= 7
        while p:
            enc.insert(0, 0x80 | (p & 0x7F))
            p >>= 7
        out += bytes(enc)
    return der(0x06, out)


# leap_line: each processor vector as a line, and all of them as one stream.
lines = []
for f in sorted((ROOT / "proto/vectors/processor").glob("*.json")):
    line = f.read_bytes().strip() + b"\r\n"
    lines.append(line)
    write("leap_line", f.stem, line)
write("leap_line", "stream", b"".join(lines) + b"\n{\"Header\":")

# relay_frame: each vector with its length prefix, and all of them as one stream.
frames = []
for f in sorted((ROOT / "proto/vectors/relay").glob("*.cbor")):
    body = f.read_bytes()
    frame = struct.pack(">I", len(body)) + body
    frames.append(frame)
    write("relay_frame", f.stem, frame)
write("relay_frame", "stream", b"".join(frames))

# txt_record, mode 0: host, instance, then TXT strings as on the wire.
def txt_input(host, instance, entries):
    out = bytes([0]) + bytes([len(host)]) + host + bytes([len(instance)]) + instance
    for e in entries:
        out += bytes([len(e)]) + e
    return out


RA3 = [b"MACADDR=90:70:65:12:34:56", b"CODEVER=21.10.12f000", b"DEVCLASS=08120101",
       b"FW_STATUS=1:NoUpdate", b"NW_STATUS=11:InternetWorking", b"ST_STATUS=good",
       b"SYSTYPE=RadioRa3Processor"]
QSX = RA3[:-1] + [b"SYSTYPE=HWQSProcessor", b"SERNUM=37152423", b"CLAIM_STATUS=Unclaimed"]
write("txt_record", "ra3", txt_input(b"Lutron-0236e6a7.local.", b"Lutron Status._lutron._tcp.local.", RA3))
write("txt_record", "qsx", txt_input(b"Lutron-0236e6a7.local.", b"Lutron Status._lutron._tcp.local.", QSX))
write("txt_record", "odd", txt_input(b"lutron-XYZ.local", b"x", [b"macaddr", b"=v", b"SERNUM=99999999999", b"CODEVER=\x01\xff"]))


# txt_record, mode 1: a legacy unicast DNS-SD answer.
def name(n):
    out = b""
    for label in n.rstrip(".").split("."):
        out += bytes([len(label)]) + label.encode()
    return out + b"\x00"


def rr(owner, rtype, rdata):
    return name(owner) + struct.pack(">HHIH", rtype, 1, 120, len(rdata)) + rdata


inst = "Lutron Status._lutron._tcp.local"
host = "Lutron-0236e6a7.local"
records = [
    rr("_lutron._tcp.local", 12, name(inst)),
    rr(inst, 33, struct.pack(">HHH", 0, 0, 22) + name(host)),
    rr(inst, 16, b"".join(bytes([len(e)]) + e for e in QSX)),
    rr(host, 1, bytes([10, 0, 0, 1])),
    rr(host, 28, bytes(15) + b"\x01"),
]
header = struct.pack(">HHHHHH", 7, 0x8400, 0, 1, 0, len(records) - 1)
write("txt_record", "unicast-answer", b"\x01" + header + b"".join(records))
write("txt_record", "unicast-ptr-only", b"\x01" + struct.pack(">HHHHHH", 7, 0x8400, 0, 1, 0, 0) + records[0])

# sim_csr, modes 0 and 1: requests made with openssl.
with tempfile.TemporaryDirectory() as tmp:
    tmp = pathlib.Path(tmp)
    conf = tmp / "ca.cnf"
    conf.write_text("[req]\ndistinguished_name=dn\n[dn]\n[ext]\nbasicConstraints=critical,CA:TRUE\n"
                    "keyUsage=keyCertSign,cRLSign\nsubjectAltName=DNS:evil.example\n")
    kinds = {
        "ec": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        "ed25519": ["-newkey", "ed25519"],
        "rsa": ["-newkey", "rsa:2048"],
    }
    for kind, key in kinds.items():
        for variant, extra in [("plain", []), ("asks-ca", ["-reqexts", "ext"])]:
            if (CORPUS / "sim_csr" / f"text-{kind}-{variant}").exists():
                continue  # keys are random: keep the committed requests stable
            subj = "/CN=handoff fuzz" if variant == "plain" else "/CN=evil/O=x"
            pem = subprocess.run(
                ["openssl", "req", "-new", "-nodes", "-config", str(conf), "-subj", subj,
                 "-keyout", str(tmp / "k.pem")] + key + extra,
                check=True, capture_output=True).stdout
            der_bytes = subprocess.run(["openssl", "req", "-outform", "DER"], input=pem,
                                       check=True, capture_output=True).stdout
            if kind == "rsa" and variant == "asks-ca":
                continue  # one RSA request is enough; they are big
            write("sim_csr", f"text-{kind}-{variant}", b"\x00" + pem)
            write("sim_csr", f"der-{kind}-{variant}", b"\x01" + der_bytes)

# sim_csr, mode 2: the parts of a request info, signed by the harness.
cn = der(0x30, der(0x31, der(0x30, oid("2.5.4.3") + der(0x0C, b"handoff fuzz"))))
no_cn = der(0x30, der(0x31, der(0x30, oid("2.5.4.10") + der(0x0C, b"org"))))
basic_ca = der(0x30, oid("2.5.29.19") + b"\x01\x01\xff" + der(0x04, der(0x30, b"\x01\x01\xff")))
key_usage = der(0x30, oid("2.5.29.15") + der(0x04, der(0x03, b"\x01\x06")))
ext_req = lambda exts: der(0xA0, der(0x30, oid("1.2.840.113549.1.9.14") + der(0x31, der(0x30, exts))))
for choice in (0, 1):
    alg = ["ed25519", "p256"][choice]
    write("sim_csr", f"signed-{alg}-plain", bytes([2, choice, 0, len(cn)]) + cn + b"\xa0\x00")
    write("sim_csr", f"signed-{alg}-asks-ca",
          bytes([2, choice, 0, len(cn)]) + cn + ext_req(basic_ca + key_usage))
write("sim_csr", "signed-no-cn", bytes([2, 0, 0, len(no_cn)]) + no_cn + b"\xa0\x00")

# Dictionaries (libFuzzer -dict=): without AddressSanitizer's memcmp hooks,
# libFuzzer does not learn compared strings by itself, so give it the
# protocol's words.
DICT = ROOT / "fuzz" / "dict"
DICT.mkdir(exist_ok=True)


def dict_line(token):
    esc = "".join(chr(b) if 0x20 <= b < 0x7F and b not in b'"\\' else f"\\x{b:02x}" for b in token)
    return f'"{esc}"\n'


leap_words = """Header Body CommuniqueType StatusCode Url ClientTag MessageBodyType ContentType
RequestType Execute /pair CommandType CSR Parameters DisplayName DeviceUID Role Admin Status
Permissions PhysicalAccess SigningResult Certificate RootCertificate Exception Message
ReadRequest ReadResponse PingRequest PingResponse ExceptionResponse OnePingResponse
CreateRequest UpdateRequest SubscribeRequest DeleteRequest LEAPVersion
/server/1/status/ping /server/status/ping /device get-cert status;plurality=single
signing-result;plurality=single exception;plurality=single""".split()
leap = [f'"{w}"'.encode() for w in leap_words]
leap += [b'"200 OK"', b'"401 Unauthorized"', b'"204 NoContent"', b'"400 BadRequest"', b"\r\n", b"null", b"1e999"]
(DICT / "leap_line.dict").write_text("".join(dict_line(t) for t in leap))


def cbor_text(s):
    b = s.encode()
    return (bytes([0x60 + len(b)]) if len(b) < 24 else bytes([0x78, len(b)])) + b


relay_words = """k v sw id ev p sn mac proof at pop model fw email dur link force r rule why q st code n s
hello hello-ack event ack status-query status error claimed released share-access
new-share-link redeem-link revoke-access applied duplicate refused green yellow grey
1d 7d 30d 1y unlimited malformed too-large unknown-kind unknown-event
unsupported-version hello-first unknown-processor internal""".split()
relay = [cbor_text(w) for w in relay_words] + [b"\x46", b"\x1a", b"\x82", b"\xa1", b"\xf5"]
(DICT / "relay_frame.dict").write_text("".join(dict_line(t) for t in relay))

txt_words = """MACADDR= CODEVER= DEVCLASS= FW_STATUS= NW_STATUS= ST_STATUS= SYSTYPE= SERNUM=
CLAIM_STATUS= RadioRa3Processor HWQSProcessor SmartBridge RA2Select Lutron- .local. _lutron _leap _tcp local""".split()
txt = [w.encode() for w in txt_words] + [b"\x00\x0c\x00\x01", b"\x00\x21\x00\x01", b"\x00\x10\x00\x01", b"\xc0\x0c"]
(DICT / "txt_record.dict").write_text("".join(dict_line(t) for t in txt))
