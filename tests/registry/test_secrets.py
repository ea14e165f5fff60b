"""No secret in a repr, and the redactor that guards error messages."""

from arv_keepdocker_plugin.distribution import (
    CredentialOptions,
    PullOptions,
    RegistryError,
    RegistrySession,
    parse_creds,
)
from arv_keepdocker_plugin.distribution.client import RegistryClient
from arv_keepdocker_plugin.distribution.credentials import Credential
from arv_keepdocker_plugin.distribution.registry_errors import Redactor, one_line, strip_queries

SECRET = "pa55-Secret-xyz"


def test_reprs_hide_secrets():
    creds = parse_creds("bob:" + SECRET)
    options = PullOptions(credentials=CredentialOptions(creds=creds),
                          env={"TOKEN": SECRET})
    client = RegistryClient("r.example", credential=Credential("", "", SECRET))
    session = RegistrySession(options)
    try:
        for text in (repr(options), str(options), repr(client), repr(session),
                     repr(client.redact), repr(client.tokens)):
            assert SECRET not in text and creds.basic_value() not in text
    finally:
        client.close()
        session.close()


def test_redactor_and_messages():
    redact = Redactor()
    redact.add(SECRET, "", "short")
    text = redact("got https://s.example/blob?sig=%s#frag with %s and shorter" % (SECRET, SECRET))
    assert text == "got https://s.example/blob with *** and ***er"
    assert strip_queries("see http://h/p?x=1 and https://g/q#f.") == "see http://h/p and https://g/q"
    assert one_line("a\n  b\tc", 0) == "a b c" and one_line("x" * 50, 10) == "xxxxxxx..."
    client = RegistryClient("r.example", credential=Credential("bob", SECRET))
    try:
        error = client.fail(RegistryError, "line one\nwith %s in it" % SECRET)
    finally:
        client.close()
    assert str(error) == "line one with *** in it"
