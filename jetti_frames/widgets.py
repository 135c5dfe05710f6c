"""An ipywidgets query form: build a Jetti query by pointing and clicking, see the frame.

The form lists every resource of the catalogue (the analytics resources first), the resource's
attributes, filter rows whose value input fits the field, the related models to include, an order
and a row limit.  **Preview** reads the first page, **Load** reads everything in a background
thread (with a progress bar and a **Cancel** button), **Snapshot** writes a parquet snapshot.
The form shows the frame, its row count, the requests sent and cache hits, and the equivalent
``read_jetti(...)`` call, ready to copy.

Without a token (no ``JETTI_API_TOKEN`` and no client given) the form starts an in-process
sandbox, kept alive for the kernel, and says so in its header.

The form's words and values (pickers' options and tooltips, typed-in values, the ``where`` and
the code) live in ``_form_values``, its filter rows in ``_form_filters``.

Examples
--------
>>> from jetti_frames.widgets import build_where
>>> build_where([("purchaseType", "=", "dropship"), ("total", "$gte", 100.0)])
{'purchaseType': 'dropship', 'total': {'$gte': 100.0}}
>>> form = query_form()                                              # doctest: +SKIP
>>> form.resource.value = "purchases"; form.preview.click(); form.wait()  # doctest: +SKIP
>>> form.df.shape                                                    # doctest: +SKIP
"""

from __future__ import annotations

import atexit
import html
import threading
from collections.abc import Callable
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

import ipywidgets as w
import pandas as pd

from ._form_filters import FilterRow
from ._form_values import (
    ANALYTICS_RESOURCES,
    build_where,
    field_help,
    field_options,
    fields_help,
    format_call,
    iso_datetime,
    parse_list,
    parse_scalar,
    resource_options,
)
from .catalog import CATALOG, Resource
from .errors import JettiConfigError, JettiError
from .settings import SANDBOX_TOKEN, Settings

if TYPE_CHECKING:
    from .client import JettiClient

__all__ = ["ANALYTICS_RESOURCES", "FilterRow", "QueryForm", "build_where", "field_help",
           "field_options", "fields_help", "format_call", "iso_datetime", "parse_list",
           "parse_scalar", "query_form", "resource_options"]

#: Rows shown in the form's table.
HEAD_ROWS = 50

# -- the sandbox the form falls back on --------------------------------------------------------

_SANDBOX: dict[str, Any] = {}
_SANDBOX_LOCK = threading.Lock()


def sandbox_base_url() -> str:
    """Start (once per process) an in-process sandbox and return its base URL.

    The sandbox lives as long as the kernel (it is stopped at exit).
    """
    with _SANDBOX_LOCK:
        if "sandbox" not in _SANDBOX:
            from .sandbox import Sandbox

            sandbox = Sandbox().start()
            atexit.register(sandbox.stop)
            _SANDBOX["sandbox"] = sandbox
        return str(_SANDBOX["sandbox"].base_url)


# -- the form --------------------------------------------------------------------------------


class QueryForm:
    """The query form: widgets, the running job and its last result.

    Parts (widgets) tests and users can drive: ``resource``, ``attributes``, ``add_filter_button``
    (or :meth:`add_filter`), ``filters`` (a list of :class:`FilterRow`), ``include`` and
    ``include_attributes`` (model -> attribute picker), ``order_field``, ``order_direction``,
    ``max_rows``, ``preview``, ``load``, ``snapshot_path``, ``snapshot``, ``cancel``, ``progress``,
    ``status``, ``error``, ``table``, ``stats``, ``code``.  The last frame is ``df``.
    """

    def __init__(self, client: JettiClient, *, sandbox: bool = False,
                 resources: ExitStack | None = None) -> None:
        self.client = client
        self.started_sandbox = sandbox
        #: What the form opened for itself (its client), closed by :meth:`close`.
        self._resources = resources or ExitStack()
        self.df: pd.DataFrame | None = None
        self.info: Any = None
        self.filters: list[FilterRow] = []
        self.include_attributes: dict[str, w.SelectMultiple] = {}
        self._thread: threading.Thread | None = None
        self._cancel = threading.Event()
        self._last_code = ""
        self._display: Any = None
        self._build()
        self._on_resource()

    # -- layout -------------------------------------------------------------------------------

    def _build(self) -> None:
        self.header = w.HTML(self._header_html())
        self.header.add_class("jf-header")
        options = resource_options()
        self.resource = w.Combobox(value="purchases", options=options, ensure_option=True,
                                   placeholder="type to search resources",
                                   description="Resource")
        self.resource.add_class("jf-resource")
        wide = w.Layout(width="480px")
        self.attributes = w.SelectMultiple(options=[], rows=8, description="Attributes",
                                           layout=wide)
        self.attributes.add_class("jf-attributes")
        self.add_filter_button = w.Button(description="Add filter", icon="plus")
        self.add_filter_button.add_class("jf-add-filter")
        self.filter_box = w.VBox([])
        self.include = w.SelectMultiple(options=[], rows=6, description="Include",
                                        layout=w.Layout(width="640px"))
        self.include.add_class("jf-include")
        self.include_box = w.VBox([])
        self.order_field = w.Dropdown(options=[("(server order)", "")], description="Order by")
        self.order_field.add_class("jf-order")
        self.order_direction = w.ToggleButtons(options=["ascending", "descending"],
                                               value="ascending", disabled=True,
                                               tooltips=["smallest first", "largest first"])
        self.max_rows = w.BoundedIntText(value=0, min=0, max=10**9, description="Max rows",
                                         tooltip="0 = every row (Preview reads one page)")
        max_rows_hint = w.HTML("<i>0 = every row</i>")
        self.max_rows.add_class("jf-max-rows")
        self.preview = w.Button(description="Preview", button_style="info", icon="eye",
                                tooltip="first page only")
        self.preview.add_class("jf-preview")
        self.load = w.Button(description="Load", button_style="primary", icon="download",
                             tooltip="every row, in the background")
        self.load.add_class("jf-load")
        self.cancel = w.Button(description="Cancel", button_style="warning", icon="stop",
                               disabled=True)
        self.cancel.add_class("jf-cancel")
        self.snapshot_path = w.Text(placeholder="data/purchases", description="Path")
        self.snapshot_path.add_class("jf-snapshot-path")
        self.snapshot = w.Button(description="Snapshot", icon="save",
                                 tooltip="write a parquet snapshot to the path")
        self.snapshot.add_class("jf-snapshot")
        self.progress = w.IntProgress(value=0, min=0, max=1, description="Pages",
                                      layout=w.Layout(visibility="hidden"))
        self.status = w.HTML("")
        self.status.add_class("jf-status")
        self.error = w.HTML("")
        self.error.add_class("jf-error")
        self.stats = w.HTML("")
        self.stats.add_class("jf-stats")
        self.code = w.Textarea(value="", rows=10, layout=w.Layout(width="100%"))
        self.code.observe(self._fit_code, names="value")
        self.code.add_class("jf-code")
        self.table = w.HTML("")
        self.table.add_class("jf-table")

        self.resource.observe(self._on_resource, names="value")
        self.attributes.observe(self._on_attributes, names="value")
        self.include.observe(self._on_include, names="value")
        self.order_field.observe(self._on_order, names="value")
        self.add_filter_button.on_click(lambda _: self.add_filter())
        self.preview.on_click(lambda _: self.run_preview())
        self.load.on_click(lambda _: self.run_load())
        self.snapshot.on_click(lambda _: self.run_snapshot())
        self.cancel.on_click(lambda _: self.request_cancel())
        for widget in (self.attributes, self.order_field, self.order_direction, self.max_rows,
                       self.snapshot_path):
            widget.observe(lambda _: self._refresh_code(), names="value")

        query = w.VBox([
            self.resource, self.attributes,
            w.HTML("<b>Filters</b>"), self.filter_box, self.add_filter_button,
            self.include, self.include_box,
            w.HBox([self.order_field, self.order_direction]),
            w.HBox([self.max_rows, max_rows_hint]),
        ])
        actions = w.HBox([self.preview, self.load, self.cancel, self.snapshot_path,
                          self.snapshot])
        self.box = w.VBox([
            self.header, query, actions, w.HBox([self.progress, self.status]), self.error,
            self.stats, w.HTML("<b>Equivalent code</b>"), self.code, self.table,
        ])
        self.box.add_class("jf-query-form")

    def _header_html(self) -> str:
        base = html.escape(str(getattr(self.client, "base_url", "")))
        return _STYLE + self._banner(base)

    def _banner(self, base: str) -> str:
        if self.started_sandbox or getattr(self.client, "is_sandbox", False):
            return ("<div style='padding:4px 8px;background:#fff3cd;border:1px solid #e0c36a'>"
                    "<b>Sandbox data</b>: a synthetic Jetti account served at "
                    f"<code>{base}</code>, not your company's data. Set "
                    "<code>JETTI_API_TOKEN</code> to query the real API.</div>")
        return f"<div><b>Jetti API</b> at <code>{base}</code></div>"

    # -- display ------------------------------------------------------------------------------

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        """The widget, plus a static HTML copy of the form's state for places without widget
        state (an exported notebook, a viewer): the header, status, code and result table."""
        bundle = dict(self.box._repr_mimebundle_(**kwargs) or {})
        bundle["text/html"] = self._static_html()
        rows = None if self.df is None else len(self.df)
        bundle["text/plain"] = (f"QueryForm(resource={self.resource.value!r}, "
                                f"status={self.status.value or 'ready'!r}, rows={rows})")
        return bundle

    def _ipython_display_(self) -> None:
        from IPython.display import display

        self._display = display(self._repr_mimebundle_(), raw=True, display_id=True)

    def _republish(self) -> None:
        """Refresh the static copy of an IPython display (the widget itself is live anyway)."""
        if self._display is not None:
            self._display.update(self._repr_mimebundle_(), raw=True)

    def _static_html(self) -> str:
        status = html.escape(self.status.value or "ready")
        return ("<div class='jf-query-form-static'>" + self._header_html()
                + "<p><b>Query form</b> (interactive while the notebook runs; below, its last "
                f"state) · <span class='jf-status'>{status}</span></p>"
                + self.error.value + (f"<p>{self.stats.value}</p>" if self.stats.value else "")
                + f"<pre class='jf-code'>{html.escape(self.code.value)}</pre>"
                + self.table.value + "</div>")

    # -- reacting to the user -----------------------------------------------------------------

    @property
    def resource_spec(self) -> Resource:
        return CATALOG.resource(self.resource.value or "purchases")

    def _on_resource(self, _: Any = None) -> None:
        if not self.resource.value:
            return
        spec = self.resource_spec
        names = spec.field_names
        self.attributes.value = ()
        self.attributes.options = field_options(spec)
        self._on_attributes()
        for row in list(self.filters):
            self.remove_filter(row)
        self.include.value = ()
        self.include.options = self._include_options(spec)
        self.include.tooltip = "\n".join(label for label, _ in self.include.options) or None
        self.order_field.options = [("(server order)", ""), *[(n, n) for n in names]]
        self.order_field.value = ""
        self._on_order()
        self.snapshot_path.placeholder = f"data/{spec.url}"
        self._refresh_code()

    def _on_attributes(self, _: Any = None) -> None:
        """The picker's tooltip says what the picked fields hold (the catalogue's words)."""
        self.attributes.tooltip = fields_help(self.resource_spec, self.attributes.value)

    def _on_order(self, _: Any = None) -> None:
        """The direction means nothing in server order: disabled until a field is picked."""
        name = self.order_field.value
        self.order_direction.disabled = not name
        self.order_field.tooltip = (field_help(self.resource_spec.field(name)) if name
                                    else "the server's order (by id)")

    def _fit_code(self, _: Any = None) -> None:
        """Show the whole call: as many rows as it has lines (long lines scroll sideways)."""
        self.code.rows = min(max(self.code.value.count("\n") + 1, 4), 40)

    @staticmethod
    def _include_options(spec: Resource) -> list[tuple[str, str]]:
        options: dict[str, str] = {}
        for kind, relations in (("belongs to", spec.belongs_to), ("has many", spec.has_many)):
            for rel in relations:
                if rel.model in options or rel.model not in CATALOG:
                    continue
                options[rel.model] = f"{rel.model} ({kind}, via {rel.foreign_key})"
        return sorted(((label, model) for model, label in options.items()), key=lambda o: o[1])

    def _on_include(self, _: Any = None) -> None:
        chosen = list(self.include.value)
        for model in list(self.include_attributes):
            if model not in chosen:
                del self.include_attributes[model]
        for model in chosen:
            if model not in self.include_attributes:
                picker = w.SelectMultiple(options=field_options(CATALOG.model(model)), rows=5,
                                          description=model, layout=w.Layout(width="480px"),
                                          style={"description_width": "initial"})
                picker.add_class("jf-include-attributes")
                picker.tooltip = fields_help(CATALOG.model(model), ())
                picker.observe(lambda change, p=picker, m=model: self._on_include_picked(p, m),
                               names="value")
                self.include_attributes[model] = picker
        self.include_box.children = [self.include_attributes[m] for m in chosen]
        self._refresh_code()

    def _on_include_picked(self, picker: w.SelectMultiple, model: str) -> None:
        picker.tooltip = fields_help(CATALOG.model(model), picker.value)
        self._refresh_code()

    def add_filter(self, field: str | None = None, op: str | None = None,
                   value: Any = None) -> FilterRow:
        """Add a filter row (optionally set) and return it."""
        row = FilterRow(self.resource_spec, self.remove_filter)
        row.set(field, op, value)
        for widget in (row.field, row.op):
            widget.observe(lambda _: self._refresh_code(), names="value")
        row.box.observe(lambda _: self._watch_value(row), names="children")
        self._watch_value(row)
        self.filters.append(row)
        self.filter_box.children = [r.box for r in self.filters]
        self._refresh_code()
        return row

    def _watch_value(self, row: FilterRow) -> None:
        if row.value.has_trait("value"):
            row.value.observe(lambda _: self._refresh_code(), names="value")
        self._refresh_code()

    def remove_filter(self, row: FilterRow) -> None:
        """Remove a filter row."""
        if row in self.filters:
            self.filters.remove(row)
            self.filter_box.children = [r.box for r in self.filters]
            self._refresh_code()

    # -- the query ----------------------------------------------------------------------------

    def options(self, *, preview: bool = False) -> dict[str, Any]:
        """The keyword arguments of ``read_jetti`` the form stands for.

        Raises
        ------
        JettiQueryError
            For a value that does not fit its field.
        """
        include: list[Any] = []
        for model in self.include.value:
            attrs = list(self.include_attributes[model].value)
            include.append({"model": model, "attributes": attrs} if attrs else model)
        order: str | None = None
        if self.order_field.value:
            desc = self.order_direction.value == "descending"
            order = ("-" if desc else "") + self.order_field.value
        limit = self.max_rows.value or None
        if preview:
            page = int(getattr(getattr(self.client, "settings", None), "page_size", 0)
                       or Settings.from_env().page_size)
            limit = min(limit, page) if limit else page
        attributes = list(self.attributes.value)
        return {
            "where": build_where(row.condition() for row in self.filters) or None,
            "attributes": attributes or None,
            "include": include or None,
            "order": order,
            "limit": limit,
        }

    def connection(self) -> tuple[dict[str, str], list[str]]:
        """Keyword expressions and imports that point the code at the form's server."""
        if self.started_sandbox:
            return ({"base_url": repr(self.client.base_url), "token": "SANDBOX_TOKEN"},
                    ["from jetti_frames.settings import SANDBOX_TOKEN"])
        if self.client.base_url != Settings.from_env().base_url:
            return {"base_url": repr(self.client.base_url)}, []
        return {}, []

    def code_for(self, action: str = "load") -> str:
        """The Python code equivalent to ``action`` (``"preview"``, ``"load"``, ``"snapshot"``).

        The code box shows ``"load"`` (the form's Max rows) even after a Preview, which reads
        one page; ``"snapshot"`` after Snapshot.
        """
        options = self.options(preview=action == "preview")
        connection, imports = self.connection()
        if action == "snapshot":
            options.pop("limit", None)
            extra = [repr(self.snapshot_path.value or self.snapshot_path.placeholder)]
            return format_call("snapshot", self.resource_spec.url, options, extra_args=extra,
                               connection=connection, imports=imports)
        return format_call("read_jetti", self.resource_spec.url, options,
                           connection=connection, imports=imports)

    def _refresh_code(self) -> None:
        if self.running:
            return
        try:
            self.code.value = self.code_for("load")
            self.error.value = ""
        except JettiError as exc:
            self.error.value = _error_html(exc)

    # -- running ------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> pd.DataFrame | None:
        """Block until the running job (if any) ends; return :attr:`df`."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.df

    def close(self) -> None:
        """Stop the running job and close the client the form made (a given one stays open)."""
        if self.running:
            self.request_cancel()
            self.wait()
        self._resources.close()

    def request_cancel(self) -> None:
        """Ask the running job to stop after the page it is reading."""
        self._cancel.set()
        self.status.value = "cancelling…"

    def run_preview(self) -> None:
        """Read the first page (in the background)."""
        self._start("preview", self._preview_job)

    def run_load(self) -> None:
        """Read every row (or ``max_rows``), page by page, in the background."""
        self._start("load", self._load_job)

    def run_snapshot(self) -> None:
        """Write a parquet snapshot to ``snapshot_path`` (in the background)."""
        self._start("snapshot", self._snapshot_job)

    def _start(self, action: str, job: Callable[[str, dict[str, Any]], pd.DataFrame | None]
               ) -> None:
        if self.running:
            self.status.value = "busy: cancel the running job first"
            return
        resource = self.resource_spec.url
        try:
            options = self.options(preview=action == "preview")
            code = self.code_for("snapshot" if action == "snapshot" else "load")
            checked = {k: v for k, v in _clean(options).items()
                       if action != "snapshot" or k != "limit"}
            self.client.explain(resource, **checked)  # validates; sends nothing
        except JettiError as exc:
            self.error.value = _error_html(exc)
            return
        self.error.value = ""
        self.code.value = code
        self._cancel = threading.Event()
        self._set_busy(True)
        self.status.value = f"{action}…"
        self._thread = threading.Thread(target=self._run, args=(action, job, resource, options),
                                        name=f"jetti-form-{action}", daemon=True)
        self._thread.start()

    def _run(self, action: str, job: Callable[[str, dict[str, Any]], pd.DataFrame | None],
             resource: str, options: dict[str, Any]) -> None:
        try:
            frame = job(resource, options)
        except Exception as exc:  # shown in the form, never as a traceback
            self.error.value = _error_html(exc)
            self.status.value = f"{action} failed"
        else:
            if frame is None:
                self.status.value = f"{action} cancelled"
            else:
                self.df = frame
                self._show(frame, action)
        finally:
            self._set_busy(False)
            self._republish()

    def _preview_job(self, resource: str, options: dict[str, Any]) -> pd.DataFrame:
        return self.client.read(resource, progress=False, **_clean(options))

    def _load_job(self, resource: str, options: dict[str, Any]) -> pd.DataFrame | None:
        self.progress.layout.visibility = "visible"
        self.progress.value, self.progress.max = 0, 1

        def on_page(pages: int, rows: int) -> None:
            if self._cancel.is_set():
                raise _Cancelled  # stops the read: nothing more is requested
            self.progress.max = max(self.progress.max, pages + 1)
            self.progress.value = pages
            self.status.value = f"loading… {rows:,} rows, {pages} pages"

        try:
            frame = self.client.read(resource, progress=False, on_page=on_page,
                                     **_clean(options))
        except _Cancelled:
            return None
        self.progress.max = self.progress.value = max(self.progress.value, 1)
        return frame

    def _snapshot_job(self, resource: str, options: dict[str, Any]) -> pd.DataFrame:
        from .snapshot import read_snapshot, snapshot

        path = self.snapshot_path.value or self.snapshot_path.placeholder
        options = {k: v for k, v in _clean(options).items() if k != "limit"}
        self.info = snapshot(resource, path, client=self.client, **options)
        return read_snapshot(path)

    def _set_busy(self, busy: bool) -> None:
        for button in (self.preview, self.load, self.snapshot):
            button.disabled = busy
        self.cancel.disabled = not busy

    def _show(self, frame: pd.DataFrame, action: str) -> None:
        stats = getattr(self.client, "last_stats", None)
        requests, hits = _stat(stats, "requests"), _stat(stats, "cache_hits")
        self.status.value = f"{action} done"
        self.stats.value = (
            f"<span class='jf-rows'><b>{len(frame):,}</b> rows</span> · "
            f"<span class='jf-requests'>{requests} request{'s' * (requests != 1)} sent</span> · "
            f"<span class='jf-cache-hits'>{hits} cache hit{'s' * (hits != 1)}</span>"
            + (f" · showing the first {HEAD_ROWS}" if len(frame) > HEAD_ROWS else "")
        )
        self.table.value = frame.head(HEAD_ROWS).to_html(
            classes="jf-frame", max_cols=40, border=0, na_rep="<NA>")


class _Cancelled(Exception):
    """Raised from the progress callback to stop a load the user cancelled."""


_STYLE = ("<style>.jf-code textarea{font-family:monospace;font-size:12px;white-space:pre;"
          "overflow:auto}"
          ".jf-table table{border-collapse:collapse;font-size:12px}"
          ".jf-table th,.jf-table td{padding:2px 6px;border-bottom:1px solid #ddd}</style>")


def _clean(options: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in options.items() if v is not None}


def _stat(stats: Any, name: str) -> int:
    if stats is None:
        return 0
    value = stats.get(name, 0) if isinstance(stats, dict) else getattr(stats, name, 0)
    return int(value or 0)


def _error_html(exc: BaseException) -> str:
    kind = type(exc).__name__
    text = str(exc) or kind
    status = getattr(exc, "status", None)
    prefix = f"{kind}" + (f" (HTTP {status})" if status else "")
    return ("<div style='color:#a00;border-left:3px solid #a00;padding-left:6px'>"
            f"<b>{html.escape(prefix)}</b>: {html.escape(text)}</div>")


def query_form(client: JettiClient | None = None, **options: Any) -> QueryForm:
    """A query form on ``client``; without one, on the ``JETTI_*`` environment or a sandbox.

    Parameters
    ----------
    client
        The client to read with. ``None``: a client from ``JETTI_API_TOKEN``/``JETTI_BASE_URL``,
        or, without a token, one on an in-process sandbox kept alive for the kernel.
    **options
        :class:`~jetti_frames.JettiClient` options for the client made when ``client`` is None
        (``page_size``, ``cache``, ...).

    Examples
    --------
    >>> form = query_form()              # doctest: +SKIP
    >>> form                             # doctest: +SKIP
    """
    if client is not None:
        if options:
            raise JettiConfigError("pass client options only when no client is given")
        return QueryForm(client)
    from .client import open_client

    options.setdefault("progress", False)
    started = not (options.get("token") or Settings.from_env().token)
    if started:
        options.update(token=SANDBOX_TOKEN, base_url=sandbox_base_url())
    resources = ExitStack()
    made = resources.enter_context(open_client(**options))
    return QueryForm(made, sandbox=started, resources=resources)
