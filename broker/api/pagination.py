"""Paging a SQLAlchemy SELECT with flask-smorest (`X-Pagination` header)."""

from flask import g
from flask_smorest import Page
from sqlalchemy import func, select

from broker.consults.audit import record_shown
from broker.extensions import db


class SelectPage(Page):
    @property
    def items(self):
        """The page's rows; none past the last page (whose offset a database may not take)."""
        first = self.page_params.first_item
        if first >= self.page_params.item_count:
            return []
        query = self.collection.offset(first).limit(self.page_params.page_size)
        return list(db.session.scalars(query))

    @property
    def item_count(self):
        counted = self.collection.order_by(None).subquery()
        return db.session.scalar(select(func.count()).select_from(counted))


class ShownConsultsPage(SelectPage):
    """A page of consults: the caller is recorded as shown them (one write)."""

    @property
    def items(self):
        items = super().items
        record_shown(g.caller, items, "api-list")
        return items
