"""The dashboard: server-rendered pages with Chinese and English labels, charts drawn by the vendored ECharts
file (static/echarts.min.js, no CDN, no build step), each chart beside the table it was drawn from. The page
asks /dashboard/version every few seconds and, when the projection has moved, refetches itself and swaps the
tables and chart data in place (no reload).

Browsers cannot send a Bearer header on navigation, so the dashboard signs in once with the same key (analyst
or admin) and keeps it in an HttpOnly, SameSite=Strict cookie."""

from __future__ import annotations

import json
from decimal import Decimal
from html import escape
from typing import Any
from urllib.parse import parse_qs, quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from tcr_reporting.adapters.http.api import READER_ROLES
from tcr_reporting.domain.calendar import current_year, is_provisional
from tcr_shared.language import vocabulary
from tcr_shared.language.regions import NINGXIA, ningxia_regions, prefectures
from tcr_shared.language.vocabulary import CATEGORIES, PROGRAMMES
from tcr_shared.platform.auth import Principal, client_address
from tcr_shared.platform.problems import Problem

COOKIE = "tcr_reporting_key"
CATEGORY_LABELS = {c: f"{label['zh']} {label['en']}" for c, label in vocabulary.CATEGORY_LABELS.items()}
PROGRAMME_LABELS = {p: f"{label['zh']} {label['en']}" for p, label in vocabulary.PROGRAMME_LABELS.items()}
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)


def _money(text: str) -> str:
    return f"{Decimal(text):,.2f}"


def _change(value: int | None) -> str:
    if value is None:
        return '<span class="muted">新 new</span>'
    if value > 0:
        return f'<span class="up">▲ {value}</span>'
    if value < 0:
        return f'<span class="down">▼ {-value}</span>'
    return '<span class="muted">–</span>'


async def signed_in(request: Request) -> Principal | None:
    principal = await _principal_of(request.app.state.runtime, request.cookies.get(COOKIE), client_address(request))
    request.state.principal = principal  # who acts, for the audit trail (as Authenticator.require keeps it)
    return principal


async def _principal_of(runtime: Any, secret: str | None, client: str | None) -> Principal | None:
    """The reader behind a signed-in key, checked by the service's one `Authenticator` (as the API checks it);
    None for no key, an unknown one, another role, or a registry that cannot vouch for it right now (the page
    then asks to sign in again rather than failing)."""
    if not secret:
        return None
    try:
        principal = await runtime.authenticator.authenticate(secret, client=client)  # rate limits count per address
    except Problem:
        return None
    return principal if principal.role in READER_ROLES else None


def render_page(
    title: str, body: str, version: str, *, nav: str = "", follow: bool = True, scripts: tuple[str, ...] = ()
) -> HTMLResponse:
    """A dashboard page; `follow`: the page polls the projection version and swaps its figures in place;
    `scripts`: more of our static scripts, after dashboard.js."""
    extra = "".join(f'\n<script src="/static/{escape(name)}" defer></script>' for name in scripts)
    version_url = ' data-version-url="/dashboard/version"' if follow else ""
    html = f"""<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{escape(title)}</title>
<link rel="icon" href="/static/favicon.svg" type="image/svg+xml">
<link rel="stylesheet" href="/static/dashboard.css">
<script src="/static/echarts.min.js" defer></script>
<script src="/static/dashboard.js" defer></script>{extra}
</head>
<body data-version="{escape(version)}"{version_url}>
<header class="top">
  <div class="brand"><a href="/">宁夏技术合同登记统计 <span>Ningxia technology contract statistics</span></a></div>
  <nav>{nav}</nav>
</header>
<main id="content">
{body}
</main>
</body>
</html>"""
    return HTMLResponse(html, headers={"Content-Security-Policy": CSP, "Cache-Control": "no-store"})


def chart_panel(
    chart_id: str, title: str, spec: dict[str, Any], table: str, *, tall: bool = False, hidden: bool = False
) -> str:
    spec_json = json.dumps(spec, ensure_ascii=False).replace("</", "<\\/")
    return f"""<section class="panel" id="panel-{chart_id}"{" hidden" if hidden else ""}>
  <h2>{title}</h2>
  <div class="chart{" tall" if tall else ""}" id="chart-{chart_id}" data-spec="spec-{chart_id}" role="img"
       aria-label="{escape(title)}"></div>
  <script type="application/json" id="spec-{chart_id}" data-refresh>{spec_json}</script>
  <details class="data" open><summary>数据表 Data table</summary>
    <div class="table-wrap" id="table-{chart_id}" data-refresh>{table}</div>
  </details>
</section>"""


def _table(headers: list[str], rows: list[list[str]], numeric_from: int = 1) -> str:
    head = "".join(f"<th>{h}</th>" for h in headers)
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i >= numeric_from else ''}>{cell}</td>" for i, cell in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


async def _context(request: Request, year: int | None) -> tuple[Any, int, list[int], str]:
    runtime = request.app.state.runtime
    queries = runtime.queries
    version = await queries.version()
    years = await queries.years()
    this_year = current_year(runtime.clock())
    years = sorted({y for y in years if 2000 <= y <= this_year})
    if year is None or not 2000 <= year <= this_year:
        year = years[-1] if years else this_year
    return queries, year, years, ",".join(str(v) for v in version)


def _nav(years: list[int], year: int, base: str) -> str:
    links = " ".join(f'<a href="{base}?year={y}" class="{"current" if y == year else ""}">{y}</a>' for y in years)
    return (
        f'<span class="years">年度 Year: {links or year}</span>'
        f' <span class="downloads">年报 Annual report {year}: '
        f'<a href="/v1/reports/annual/{year}?format=xlsx">XLSX</a> · '
        f'<a href="/v1/reports/annual/{year}?format=csv">CSV</a> · '
        f'<a href="/v1/reports/annual/{year}?format=json">JSON</a></span>'
        f' <a href="/what-if">政策模拟 Policy what-if</a>'
        f' <a href="/logout" class="logout">退出 Sign out</a>'
    )


def _headline(metrics: dict[str, Any], feeds: dict[str, Any]) -> str:
    cards = [
        ("技术输出 Outflow", metrics["outflow"]["amount"], metrics["outflow"]["count"], "outflow"),
        ("技术吸纳 Inflow", metrics["inflow"]["amount"], metrics["inflow"]["count"], "inflow"),
    ]
    html = "".join(
        f'<div class="card" id="card-{key}"><div class="label">{label}</div>'
        f'<div class="value" data-figure="{key}-amount">¥ {_money(amount)}</div>'
        f'<div class="sub"><span data-figure="{key}-count">{count}</span> 份合同 contracts</div></div>'
        for label, amount, count, key in cards
    )
    html += (
        f'<div class="card" id="card-subsidies"><div class="label">奖补 Subsidies</div>'
        f'<div class="value" data-figure="subsidies-total">¥ {_money(metrics["subsidies"]["total"])}</div>'
        f'<div class="sub">净额（扣除追回） net of claw-backs</div></div>'
    )
    status = " · ".join(
        f"{escape(name)}: {feed['position']}/{'?' if feed['head'] is None else feed['head']}"
        f" ({escape(str(feed.get('state', '')))})"
        + (f' <span class="down">{escape(str(feed["error"]))}</span>' if feed.get("error") else "")
        for name, feed in feeds.items()
    )
    return (
        f'<section class="headline" id="headline" data-refresh>{html}'
        f'<p class="feeds">数据源位置 Feed positions (applied/head): {status}</p></section>'
    )


def dashboard_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)

    @router.get("/login")
    async def login_form(request: Request, next: str = "/", failed: int = 0) -> HTMLResponse:
        message = (
            '<p class="down">密钥无效 The key is not valid for reporting (analyst or admin).</p>' if failed else ""
        )
        body = f"""<section class="panel login"><h2>登录 Sign in</h2>{message}
<form method="post" action="/login">
  <input type="hidden" name="next" value="{escape(next)}">
  <label for="key">API 密钥 API key (analyst / admin)</label>
  <input id="key" name="key" type="password" autocomplete="off" required>
  <button type="submit">登录 Sign in</button>
</form></section>"""
        return render_page("登录 Sign in", body, "")

    @router.post("/login")
    async def login(request: Request) -> Response:
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        key = (form.get("key") or [""])[0].strip()
        target = (form.get("next") or ["/"])[0]
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        request.state.principal = await _principal_of(request.app.state.runtime, key, client_address(request))
        if request.state.principal is None:  # the audit trail keeps a refused sign-in without a key id
            return RedirectResponse(f"/login?failed=1&next={quote(target)}", status_code=303)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(COOKIE, key, httponly=True, samesite="strict", max_age=8 * 3600, path="/")
        return response

    @router.get("/logout")
    async def logout() -> Response:
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(COOKIE, path="/")
        return response

    @router.get("/dashboard/version")
    async def version(request: Request) -> JSONResponse:
        if await signed_in(request) is None:
            raise Problem(401, "Sign in at /login.")
        runtime = request.app.state.runtime
        return JSONResponse(
            {"version": ",".join(str(v) for v in await runtime.queries.version())},
            headers={"Cache-Control": "no-store"},
        )

    @router.get("/")
    async def overview(request: Request, year: int | None = None) -> Response:
        if await signed_in(request) is None:
            return RedirectResponse(f"/login?next={quote(str(request.url.path))}", status_code=303)
        runtime = request.app.state.runtime
        queries, year, years, version = await _context(request, year)
        region = await queries.metrics(NINGXIA, year)
        trend = await queries.trend(NINGXIA)
        county_rank = await queries.rankings(year, "county")
        prefecture_rank = await queries.rankings(year, "prefecture")
        feeds = {name: feed.status() for name, feed in runtime.feeds.items()}
        badge = (
            ' <span class="badge">临时数据 provisional: the year has not ended</span>'
            if is_provisional(year, runtime.clock())
            else ""
        )
        sections = [f"<h1>{year} 年度总览 <span>Overview {year}</span>{badge}</h1>", _headline(region, feeds)]

        # Region totals by year
        spec = {
            "type": "bar",
            "x": [str(t["year"]) for t in trend],
            "unit": "元 yuan",
            "series": [
                {"name": "技术输出 Outflow", "data": [t["outflow_amount"] for t in trend]},
                {"name": "技术吸纳 Inflow", "data": [t["inflow_amount"] for t in trend]},
                {"name": "奖补 Subsidies", "data": [t["subsidies_total"] for t in trend]},
            ],
        }
        rows = [
            [
                str(t["year"]),
                str(t["outflow_count"]),
                _money(t["outflow_amount"]),
                str(t["inflow_count"]),
                _money(t["inflow_amount"]),
                _money(t["subsidies_total"]),
            ]
            for t in trend
        ]
        sections.append(
            chart_panel(
                "totals",
                "全区历年合计 <span>Region totals by year</span>",
                spec,
                _table(
                    [
                        "年度 Year",
                        "输出合同 Outflow contracts",
                        "输出成交额 Outflow amount",
                        "吸纳合同 Inflow contracts",
                        "吸纳成交额 Inflow amount",
                        "奖补 Subsidies",
                    ],
                    rows,
                ),
            )
        )

        # County ranking
        items = county_rank["items"]
        spec = {
            "type": "bar",
            "horizontal": True,
            "unit": "元 yuan",
            "x": [f"{i['rank']}. {i['name']['zh']}" for i in items],
            "series": [
                {"name": "技术输出 Outflow", "data": [i["outflow"]["amount"] for i in items]},
                {"name": "技术吸纳 Inflow", "data": [i["inflow"]["amount"] for i in items]},
            ],
        }
        known = ningxia_regions()
        rows = [
            [
                str(i["rank"]),
                _change(i["rank_change"]),
                f'<a href="/counties/{i["region"]}?year={year}">{escape(i["name"]["zh"])} {escape(i["name"]["en"])}</a>',
                escape(known[i["prefecture"]].name_zh),
                str(i["outflow"]["count"]),
                _money(i["outflow"]["amount"]),
                str(i["inflow"]["count"]),
                _money(i["inflow"]["amount"]),
            ]
            for i in items
        ]
        sections.append(
            chart_panel(
                "ranking",
                f"县区排名 {year} <span>County ranking (outflow, then inflow)</span>",
                spec,
                _table(
                    [
                        "排名 Rank",
                        f"较{year - 1} vs {year - 1}",
                        "县区 County",
                        "地市 Prefecture",
                        "输出合同 Outflow contracts",
                        "输出成交额 Outflow amount",
                        "吸纳合同 Inflow contracts",
                        "吸纳成交额 Inflow amount",
                    ],
                    rows,
                    numeric_from=4,
                ),
                tall=True,
            )
        )

        # Prefectures: outflow vs inflow
        by_code = {i["region"]: i for i in prefecture_rank["items"]}
        ordered = [by_code[p.code] for p in prefectures()]
        spec = {
            "type": "bar",
            "unit": "元 yuan",
            "x": [f"{i['name']['zh']} {i['name']['en']}" for i in ordered],
            "series": [
                {"name": "技术输出 Outflow", "data": [i["outflow"]["amount"] for i in ordered]},
                {"name": "技术吸纳 Inflow", "data": [i["inflow"]["amount"] for i in ordered]},
            ],
        }
        rows = [
            [
                f"{escape(i['name']['zh'])} {escape(i['name']['en'])}",
                str(i["rank"]),
                str(i["outflow"]["count"]),
                _money(i["outflow"]["amount"]),
                str(i["inflow"]["count"]),
                _money(i["inflow"]["amount"]),
            ]
            for i in ordered
        ]
        sections.append(
            chart_panel(
                "prefectures",
                f"地市技术输出与吸纳 {year} <span>Outflow vs inflow per prefecture</span>",
                spec,
                _table(
                    [
                        "地市 Prefecture",
                        "排名 Rank",
                        "输出合同 Outflow contracts",
                        "输出成交额 Outflow amount",
                        "吸纳合同 Inflow contracts",
                        "吸纳成交额 Inflow amount",
                    ],
                    rows,
                ),
            )
        )

        # Subsidies by programme
        by_programme = region["subsidies"]["by_programme"]
        spec = {
            "type": "pie",
            "unit": "元 yuan",
            "x": [PROGRAMME_LABELS[p] for p in PROGRAMMES],
            "series": [{"name": "奖补 Subsidies", "data": [by_programme[p] for p in PROGRAMMES]}],
        }
        rows = [[PROGRAMME_LABELS[p], _money(by_programme[p])] for p in PROGRAMMES]
        rows.append(["<strong>合计 Total</strong>", f"<strong>{_money(region['subsidies']['total'])}</strong>"])
        sections.append(
            chart_panel(
                "subsidies",
                f"奖补（按项目） {year} <span>Subsidies by programme</span>",
                spec,
                _table(["项目 Programme", "金额 Amount (元)"], rows),
            )
        )
        return render_page(f"{year} 总览 Overview", "\n".join(sections), version, nav=_nav(years, year, "/"))

    @router.get("/counties/{code}")
    async def county(request: Request, code: str, year: int | None = None) -> Response:
        if await signed_in(request) is None:
            return RedirectResponse(f"/login?next={quote(str(request.url.path))}", status_code=303)
        region = ningxia_regions().get(code)
        if region is None:
            raise Problem(404, f"'{code}' is not a Ningxia region code.")
        runtime = request.app.state.runtime
        queries, year, years, version = await _context(request, year)
        metrics = await queries.metrics(code, year)
        trend = await queries.trend(code)
        feeds = {name: feed.status() for name, feed in runtime.feeds.items()}
        parent = ningxia_regions().get(region.parent or "")
        crumbs = (
            f'<p class="crumbs"><a href="/?year={year}">总览 Overview</a> › '
            + (f"{escape(parent.name_zh)} {escape(parent.name_en)} › " if parent else "")
            + f"{escape(region.name_zh)}</p>"
        )
        sections = [
            crumbs,
            f"<h1>{escape(region.name_zh)} <span>{escape(region.name_en)} · {code} · {year}</span></h1>",
            _headline(metrics, feeds),
        ]
        spec = {
            "type": "line",
            "unit": "元 yuan",
            "x": [str(t["year"]) for t in trend],
            "series": [
                {"name": "技术输出 Outflow", "data": [t["outflow_amount"] for t in trend]},
                {"name": "技术吸纳 Inflow", "data": [t["inflow_amount"] for t in trend]},
                {"name": "奖补 Subsidies", "data": [t["subsidies_total"] for t in trend]},
            ],
        }
        rows = [
            [
                str(t["year"]),
                str(t["outflow_count"]),
                _money(t["outflow_amount"]),
                _money(t["outflow_technology_amount"]),
                str(t["inflow_count"]),
                _money(t["inflow_amount"]),
                _money(t["inflow_technology_amount"]),
                _money(t["subsidies_total"]),
            ]
            for t in trend
        ]
        sections.append(
            chart_panel(
                "trend",
                "历年趋势 <span>Trend by year</span>",
                spec,
                _table(
                    [
                        "年度 Year",
                        "输出合同 Outflow contracts",
                        "输出成交额 Outflow amount",
                        "输出技术交易额 Outflow tech.",
                        "吸纳合同 Inflow contracts",
                        "吸纳成交额 Inflow amount",
                        "吸纳技术交易额 Inflow tech.",
                        "奖补 Subsidies",
                    ],
                    rows,
                ),
            )
        )
        out_cat, in_cat = metrics["outflow"]["by_category"], metrics["inflow"]["by_category"]
        spec = {
            "type": "bar",
            "unit": "元 yuan",
            "x": [CATEGORY_LABELS[c] for c in CATEGORIES],
            "series": [
                {"name": "技术输出 Outflow", "data": [out_cat[c]["amount"] for c in CATEGORIES]},
                {"name": "技术吸纳 Inflow", "data": [in_cat[c]["amount"] for c in CATEGORIES]},
            ],
        }
        rows = [
            [
                CATEGORY_LABELS[c],
                str(out_cat[c]["count"]),
                _money(out_cat[c]["amount"]),
                str(in_cat[c]["count"]),
                _money(in_cat[c]["amount"]),
            ]
            for c in CATEGORIES
        ]
        sections.append(
            chart_panel(
                "categories",
                f"按合同类别 {year} <span>By contract category</span>",
                spec,
                _table(
                    [
                        "类别 Category",
                        "输出合同 Outflow contracts",
                        "输出成交额 Outflow amount",
                        "吸纳合同 Inflow contracts",
                        "吸纳成交额 Inflow amount",
                    ],
                    rows,
                ),
            )
        )
        by_programme = metrics["subsidies"]["by_programme"]
        spec = {
            "type": "pie",
            "unit": "元 yuan",
            "x": [PROGRAMME_LABELS[p] for p in PROGRAMMES],
            "series": [{"name": "奖补 Subsidies", "data": [by_programme[p] for p in PROGRAMMES]}],
        }
        rows = [[PROGRAMME_LABELS[p], _money(by_programme[p])] for p in PROGRAMMES]
        sections.append(
            chart_panel(
                "county-subsidies",
                f"奖补（按项目） {year} <span>Subsidies by programme</span>",
                spec,
                _table(["项目 Programme", "金额 Amount (元)"], rows),
            )
        )
        return render_page(
            f"{region.name_zh} {region.name_en} {year}",
            "\n".join(sections),
            version,
            nav=_nav(years, year, f"/counties/{code}"),
        )

    return router
