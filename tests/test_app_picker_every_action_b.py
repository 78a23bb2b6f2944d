"""Every lesson page with stories260K picked, the pages at odd places in the course (the others: the first file)."""

import pytest

from picker import PAGES, every_control_works


@pytest.mark.parametrize("slug", PAGES[1::2])
def test_every_control_works_on_the_picked_model(picked_page, app_url, slug):
    every_control_works(picked_page, app_url, slug)
