"""One filter row of the query form: ``field operator value``, the value input fitting the
field's kind."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import ipywidgets as w

from ._form_values import _LIST_OPS, EQ, NOT_NULL, NULL, OPERATORS, _shown, field_help
from ._where import convert_value
from .catalog import Field, Resource
from .errors import JettiQueryError


class FilterRow:
    """One ``field operator value`` row of the form; the value input fits the field's kind."""

    def __init__(self, resource: Resource, on_remove: Callable[[FilterRow], None]) -> None:
        self.resource = resource
        names = [f.name for f in resource.fields]
        self.field = w.Dropdown(options=names, value="id" if "id" in names else names[0],
                                layout=w.Layout(width="220px"))
        self.op = w.Dropdown(options=OPERATORS[self.kind], layout=w.Layout(width="120px"))
        self.value: w.Widget = self._value_widget()
        self.remove = w.Button(description="✕", tooltip="remove this filter",
                               layout=w.Layout(width="36px"))
        self.box = w.HBox([self.field, self.op, self.value, self.remove])
        self.box.add_class("jf-filter")
        self.field.tooltip = field_help(self.spec)
        self.field.observe(self._on_field, names="value")
        self.op.observe(self._on_op, names="value")
        self.remove.on_click(lambda _: on_remove(self))

    @property
    def spec(self) -> Field:
        return self.resource.field(self.field.value)

    @property
    def kind(self) -> str:
        return self.spec.kind

    def set(self, field: str | None = None, op: str | None = None, value: Any = None) -> FilterRow:
        """Set the field, operator and value in one call (what a user would click)."""
        if field is not None:
            self.field.value = field
        if op is not None:
            self.op.value = op
        if value is not None:
            self.value.value = value
        return self

    def condition(self) -> tuple[str, str, Any]:
        """``(field, operator, value)`` with the value converted to the field's kind."""
        op = self.op.value
        return self.field.value, op, self._converted(op)

    def _converted(self, op: str) -> Any:
        """The value converted by ``read_jetti``'s rule (date-times as the ISO text sent)."""
        kind, raw = self.kind, getattr(self.value, "value", None)
        name = self.field.value
        if op in (NULL, NOT_NULL):
            return None
        if op in _LIST_OPS:
            raw = [part.strip() for part in str(raw or "").split(",") if part.strip()]
        elif raw is None:
            what = {"datetime": "pick a date", "integer": "enter a number",
                    "number": "enter a number"}.get(kind, "pick a value")
            raise JettiQueryError(f"{name}: {what}")
        return _shown(convert_value(self.spec, "$eq" if op == EQ else op, raw, name))

    def _value_widget(self) -> w.Widget:
        kind, op = self.kind, self.op.value
        layout = w.Layout(width="260px")
        widget: w.Widget
        if op in (NULL, NOT_NULL):
            widget = w.Label("", layout=layout)
        elif op in _LIST_OPS:
            hint = ", ".join(self.spec.enum[:3]) if self.spec.enum else "1, 2, 3"
            widget = w.Text(placeholder=f"comma-separated, e.g. {hint}", layout=layout)
        elif kind == "datetime":
            widget = w.DatePicker(layout=layout)
        elif kind == "enum":
            widget = w.Dropdown(options=list(self.spec.enum or ()), layout=layout)
        elif kind == "integer":
            widget = w.IntText(layout=layout)
        elif kind == "number":
            widget = w.FloatText(layout=layout)
        elif kind == "boolean":
            widget = w.Checkbox(value=True, description="true", indent=False, layout=layout)
        else:
            widget = w.Text(placeholder="%" if op == "$like" else "", layout=layout)
        widget.tooltip = field_help(self.spec)
        widget.add_class("jf-filter-value")
        return widget

    def _replace_value(self) -> None:
        self.value = self._value_widget()
        self.box.children = (self.field, self.op, self.value, self.remove)

    def _on_field(self, _: Any) -> None:
        self.field.tooltip = field_help(self.spec)
        ops = OPERATORS[self.kind]
        keep = self.op.value if self.op.value in ops else ops[0]
        with self.op.hold_trait_notifications():
            self.op.options = ops
            self.op.value = keep
        self._replace_value()

    def _on_op(self, change: dict[str, Any]) -> None:
        old, new = change["old"], change["new"]
        shape = {NULL: 0, NOT_NULL: 0, "$in": 1, "$notIn": 1}
        if shape.get(old, 2) != shape.get(new, 2) or new == "$like" or old == "$like":
            self._replace_value()
