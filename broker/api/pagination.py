"""Paging a SQLAlchemy SELECT with flask-smorest (`X-Pagination` header).

A page costs the same however long the history: no total is counted (a
`count(*)` would read every matching row on every request). The page's rows are
read with one more, which tells whether a next page exists. The header holds
`page`, `page_size`, `first_page`, and `previous_page` / `next_page` where there
is one.
"""

import marshmallow as ma
from flask import g
from flask_smorest import Page

from broker.consults.audit import record_shown
from broker.consults.queries import consult_views
from broker.extensions import db

# The largest OFFSET PostgreSQL and SQLite take (a signed 64-bit integer).
LARGEST_OFFSET = 2**63 - 1


class SelectPage(Page):
    @property
    def items(self):
        """The page's rows, read with one more (which says whether a next page exists)."""
        params = self.page_params
        first, size = params.first_item, params.page_size
        if first + size >= LARGEST_OFFSET:
            rows = []
        else:
            rows = self.read(self.collection.offset(first).limit(size + 1))
        params.has_next = len(rows) > size
        return rows[:size]

    @staticmethod
    def read(query) -> list:
        return list(db.session.scalars(query))

    @property
    def item_count(self):
        """Not counted; flask-smorest needs a value to write the header at all."""
        return -1


class ShownConsultsPage(SelectPage):
    """A page of consults (a `visible_consult_views` SELECT, read as views): the
    caller is recorded as shown them (one write)."""

    read = staticmethod(consult_views)

    @property
    def items(self):
        items = super().items
        record_shown(g.caller, items, "api-list")
        return items


def pagination_metadata(page_params) -> dict:
    """The X-Pagination header of a page: where it is, and its neighbours."""
    page = page_params.page
    metadata = {"page": page, "page_size": page_params.page_size, "first_page": 1}
    if page > 1:
        metadata["previous_page"] = page - 1
    if getattr(page_params, "has_next", False):
        metadata["next_page"] = page + 1
    return metadata


class PageHeaderSchema(ma.Schema):
    page = ma.fields.Int(metadata={"description": "This page's number."})
    page_size = ma.fields.Int(metadata={"description": "Items per page."})
    first_page = ma.fields.Int(metadata={"description": "Always 1."})
    previous_page = ma.fields.Int(metadata={"description": "If this is not the first."})
    next_page = ma.fields.Int(
        metadata={"description": "If more items follow (there is no total)."}
    )


PAGE_HEADER = {"description": "Where this page is", "schema": PageHeaderSchema}
