"""No server-side request forgery through webhooks, with the production rule in force
(WEBHOOK_ALLOW_HTTP_LOOPBACK off): only https:// to public addresses, checked when saved and
again right before each request, the request going to the address just checked; each refused
class of address, a real DNS name resolving to loopback (`localhost`), a name with one bad
address among good ones, and a name that rebinds to loopback after it was saved."""

import socket

import pytest

from copilot_admin.usage import webhook_http, webhook_services, webhooks
from copilot_admin.usage.models import DeliveryStatus, Webhook, WebhookEvent
from copilot_admin.usage.webhook_delivery import webhook_deliver
from copilot_admin.usage.webhook_http import WebhookUrlRefused, address_refusal, webhook_url_check
from tests.usage.webhook_receiver import Receiver

PUBLIC = "93.184.215.14"


@pytest.fixture(autouse=True)
def production_rule(settings):
    settings.WEBHOOK_ALLOW_HTTP_LOOPBACK = False


REFUSED = {
    "127.0.0.1": "loopback",
    "127.5.6.7": "loopback",
    "10.1.2.3": "private",
    "172.16.0.1": "private",
    "192.168.1.1": "private",
    "169.254.169.254": "cloud metadata",
    "169.254.10.10": "link-local",
    "100.64.0.1": "carrier-grade NAT",
    "100.127.255.254": "carrier-grade NAT",
    "0.0.0.0": "not a unicast",
    "224.0.0.1": "not a unicast",
    "240.0.0.1": "not a unicast",
    "192.0.2.10": "private",  # documentation range (TEST-NET-1)
    "::1": "loopback",
    "::": "not a unicast",
    "fe80::1": "link-local",
    "fc00::1": "private",
    "fd12:3456::1": "private",
    "fd00:ec2::254": "cloud metadata",
    "::ffff:127.0.0.1": "loopback",
    "::ffff:10.0.0.1": "private",
    "::ffff:169.254.169.254": "cloud metadata",
    "2002:7f00:1::1": "loopback",  # 6to4 carrying 127.0.0.1
    "64:ff9b::a9fe:a9fe": "cloud metadata",  # NAT64 carrying 169.254.169.254
    "2001:0:4136:e378:8000:63bf:80ff:fffe": "loopback",  # Teredo carrying 127.0.0.1
}


@pytest.mark.parametrize("address, reason", REFUSED.items())
def test_each_refused_class_of_address(address, reason):
    assert reason in (address_refusal(address) or "")
    literal = f"[{address}]" if ":" in address else address
    with pytest.raises(WebhookUrlRefused) as refused:
        webhook_url_check(f"https://{literal}/hook")
    assert reason in refused.value.reason


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_are_accepted(address):
    assert address_refusal(address) is None
    literal = f"[{address}]" if ":" in address else address
    target = webhook_url_check(f"https://{literal}:8443/hook?x=1")
    assert (target.address, target.port, target.path) == (address, 8443, "/hook?x=1")


def test_a_dns_name_resolving_to_loopback_is_refused():
    assert socket.gethostbyname("localhost").startswith("127.")  # a real name, resolved by the system
    with pytest.raises(WebhookUrlRefused) as refused:
        webhook_url_check("https://localhost/hook")
    assert "loopback" in refused.value.reason


@pytest.mark.parametrize(
    "url, reason",
    [
        (f"http://{PUBLIC}/hook", "only https://"),
        ("ftp://example.test/", "only https://"),
        (f"https://user:pass@{PUBLIC}/", "credentials"),
        ("https:///hook", "no host"),
        ("https://name.invalid/hook", "does not resolve"),
    ],
)
def test_other_refusals(url, reason):
    with pytest.raises(WebhookUrlRefused) as refused:
        webhook_url_check(url)
    assert reason in refused.value.reason


def _resolving(monkeypatch, table: dict[str, list[str]]):
    """Resolution at the socket layer: names in `table` answer its addresses, others as usual."""
    real = socket.getaddrinfo
    asked = []

    def getaddrinfo(host, port, *args, **kwargs):
        asked.append(host)
        if host in table:
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port, 0, 0) if ":" in a else (a, port),
                )
                for a in table[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return asked


def test_every_resolved_address_must_be_public(monkeypatch):
    _resolving(monkeypatch, {"mixed.example": [PUBLIC, "10.0.0.5"], "good.example": [PUBLIC, "8.8.4.4"]})
    with pytest.raises(WebhookUrlRefused):
        webhook_url_check("https://mixed.example/hook")
    assert webhook_url_check("https://good.example/hook").address == PUBLIC


def test_api_refuses_on_save(tenant_a, api_for):
    api = api_for(tenant_a.members["admin"].user)
    for url in (
        "https://localhost/",
        "https://169.254.169.254/latest/meta-data/",
        "https://[::ffff:10.0.0.1]/",
        f"http://{PUBLIC}/",
    ):
        answer = api.post("/api/v1/tenants/alpha/webhooks/", {"url": url, "events": ["abuse.case_opened"]})
        assert answer.status_code == 400, url
        assert answer.json()["error"]["code"] == "webhook_url_refused"
    assert not Webhook.objects.for_tenant(tenant_a.tenant).exists()


def test_checked_again_at_send_time_a_rebinding_name_is_refused(tenant_a, monkeypatch):
    receiver = Receiver()
    receiver.start()
    try:
        table = {"rebind.example": [PUBLIC]}
        _resolving(monkeypatch, table)
        hook, _ = webhook_services.webhook_create(
            actor=tenant_a.members["admin"],
            url=f"https://rebind.example:{receiver.port}/hook",
            events=[WebhookEvent.CASE_OPENED],
        )
        (delivery,) = webhooks.webhook_event_emit(
            tenant=tenant_a.tenant, event=WebhookEvent.CASE_OPENED, key="k", summary="s", data={}
        )
        table["rebind.example"] = ["127.0.0.1"]  # the name now points at the portal's own host
        result = webhook_deliver(tenant_id=tenant_a.tenant.pk, delivery_id=delivery.pk)
        assert (result.status, result.retry_in) == (DeliveryStatus.FAILED, None)
        delivery.refresh_from_db()
        assert "loopback" in delivery.last_error
        assert receiver.requests == []
        assert hook.pk
    finally:
        receiver.stop()


def test_the_request_goes_to_the_checked_address_without_a_second_lookup(tenant_a, monkeypatch, settings):
    settings.WEBHOOK_ALLOW_HTTP_LOOPBACK = True  # to reach the loopback receiver under a name
    receiver = Receiver()
    receiver.start()
    try:
        asked = _resolving(monkeypatch, {"hooks.example": ["127.0.0.1"]})
        target = webhook_url_check(f"http://hooks.example:{receiver.port}/hook")
        asked.clear()
        status, _ = webhook_http.webhook_post(target, body=b"{}", headers={}, timeout=5)
        assert status == 200
        assert "hooks.example" not in asked  # connected to the address checked, not a fresh answer
        assert receiver.requests[0]["headers"]["host"] == f"hooks.example:{receiver.port}"
    finally:
        receiver.stop()


def _self_signed_context(tmp_path, host: str):
    import datetime
    import ssl

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(host)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_path, key_path)
    return context


def test_tls_certificates_are_verified(settings, tmp_path):
    """Connecting to the checked address does not weaken TLS: an untrusted certificate for the
    host name fails the attempt (a transport error, retried), and nothing is accepted."""
    settings.WEBHOOK_ALLOW_HTTP_LOOPBACK = True
    receiver = Receiver(ssl_context=_self_signed_context(tmp_path, "localhost"))
    receiver.start()
    try:
        target = webhook_url_check(f"https://localhost:{receiver.port}/hook")
        with pytest.raises(webhook_http.WebhookTransportError) as failed:
            webhook_http.webhook_post(target, body=b"{}", headers={}, timeout=5)
        assert "CERTIFICATE_VERIFY_FAILED" in str(failed.value) or "certificate" in str(failed.value).lower()
        assert receiver.acknowledged() == []
    finally:
        receiver.stop()
