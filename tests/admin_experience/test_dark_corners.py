"""Issue 14, `make run`'s dark corners: a favicon on every page, and a 500 page styled like the others."""

from pathlib import Path

from django.conf import settings
from django.template.loader import render_to_string


def test_pages_name_a_favicon_that_exists(client):
    page = client.get("/login/").content.decode()
    assert 'rel="icon"' in page and "img/favicon.svg" in page
    assert (Path(settings.BASE_DIR) / "static" / "img" / "favicon.svg").exists()


def test_the_500_page_is_styled_like_the_others_without_a_request():
    html = render_to_string("500.html")
    assert "vendor/bootstrap/bootstrap.min.css" in html and "navbar" in html and "Back to start" in html
    assert "img/favicon.svg" in html
