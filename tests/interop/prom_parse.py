"""Parses a Prometheus text exposition (stdin) with the reference Python
client's parser; prints {family: {type, help, samples: [[name, labels,
value]]}} as JSON. Exits non-zero (with the parser's reason) when the text
does not parse, and when a sample has no # TYPE (the parser would call its
family "unknown"), or a family is declared twice."""
import json
import sys

from prometheus_client.parser import text_string_to_metric_families

text = sys.stdin.read()
out = {}
try:
    for family in text_string_to_metric_families(text):
        if family.name in out:
            sys.exit(f"family {family.name} appears twice")
        if family.type in ("unknown", "untyped"):
            sys.exit(f"family {family.name} has no # TYPE line")
        out[family.name] = {
            "type": family.type,
            "help": family.documentation,
            "samples": [[s.name, s.labels, s.value] for s in family.samples],
        }
except Exception as e:  # the parser raises ValueError and friends
    sys.exit(f"the exposition does not parse: {type(e).__name__}: {e}")
json.dump(out, sys.stdout)
