"""Fixtures of the browser tests: the host pages (a third-party shop on another origin) and the site they embed."""

import pytest

from tests.e2e.widget import HostPages


@pytest.fixture
def host_pages(tmp_path):
    pages = HostPages(tmp_path)
    yield pages
    pages.close()


@pytest.fixture
def shop(site, host_pages):
    """The test site (with the demo knowledge base), allowing the host pages' origin."""
    site.allowed_origins = host_pages.origin
    site.save()
    return site
