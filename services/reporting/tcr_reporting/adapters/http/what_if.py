"""政策模拟 Policy what-if (issue 14, the dashboard's part): the rule set in force as editable fields (effective date,
and per programme base, rate, cap, cap scope and beneficiary kinds; eligible categories), a run button, the
progress of a long run (a job of the subsidy service, polled), and charts of in-force vs candidate per programme
and per county, each above its data table.

The simulation itself is the subsidy service's (`POST /v1/simulations`): the browser posts the candidate to
`POST /v1/what-if` here, which passes it on with the caller's own key (the API's Bearer key, or the dashboard's
signed-in cookie) and passes the answer back unchanged, problem+json included. The page builds the candidate from
the rule set in force exactly as `GET /v1/programmes` gives it, with the edited numbers (static/whatif.js)."""

from __future__ import annotations

import json
from html import escape
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from tcr_reporting.adapters.http.api import READER_ROLES
from tcr_reporting.adapters.http.dashboard import (
    CATEGORY_LABELS,
    COOKIE,
    PROGRAMME_LABELS,
    chart_panel,
    render_page,
    signed_in,
)
from tcr_reporting.domain.calendar import current_year
from tcr_shared.language.regions import ningxia_regions
from tcr_shared.language.vocabulary import BASES, CAP_SCOPES, CATEGORIES, PARTY_KINDS
from tcr_shared.platform.problems import Problem, field_error

MAX_CANDIDATE_BYTES = 256 * 1024
KIND_LABELS = {  # every kind of party (tcr_shared.language.vocabulary.PARTY_KINDS), in its order
    "enterprise": "企业 Enterprise",
    "university": "高校 University",
    "research_institute": "科研院所 Research institute",
    "public_institution": "事业单位 Public institution",
    "government": "机关 Government",
    "social_organisation": "社会组织 Social organisation",
    "individual": "个人 Individual",
    "foreign": "境外 Foreign",
}
assert tuple(KIND_LABELS) == PARTY_KINDS, "a party kind without a label on the what-if page"
BASE_LABELS = {"amount": "合同成交额 Contract amount", "technology_amount": "技术交易额 Technology amount"}
SCOPE_LABELS = {"policy_year": "每年度 Per policy year", "project": "每项目 Per project"}
assert tuple(BASE_LABELS) == BASES and tuple(SCOPE_LABELS) == CAP_SCOPES, "a base or cap scope without a label"
EMPTY_BAR = {"type": "bar", "unit": "元 yuan", "x": [], "series": []}


async def caller_key(request: Request) -> str:
    """The caller's key: the Bearer header (API clients) or the dashboard's cookie (the page's fetch, same origin;
    SameSite=Strict and a JSON body keep other sites out). Checked here as the API checks it."""
    header = request.headers.get("authorization")
    if header:
        await request.app.state.runtime.authenticator.require(*READER_ROLES)(request)
        return header.partition(" ")[2].strip()
    if await signed_in(request) is None:
        raise Problem(
            401,
            "Send your API key as 'Authorization: Bearer <key>', or sign in at /login.",
            headers={"WWW-Authenticate": 'Bearer realm="tcr"'},
        )
    return request.cookies[COOKIE]


def _passed(answer) -> Response:
    headers = {"Cache-Control": "no-store"}
    if answer.location:
        headers["Location"] = "/v1/what-if/" + answer.location.rstrip("/").rsplit("/", 1)[-1]
    return Response(answer.content, status_code=answer.status, media_type=answer.media_type, headers=headers)


async def _candidate_body(request: Request) -> bytes:
    body = await request.body()
    if len(body) > MAX_CANDIDATE_BYTES:
        raise Problem(413, f"A candidate rule set is at most {MAX_CANDIDATE_BYTES // 1024} KiB.")
    try:
        parsed = json.loads(body or b"null")
    except ValueError as exc:
        raise Problem(400, f"The body is not JSON: {exc}") from exc
    if not isinstance(parsed, dict) or "rules" not in parsed:
        raise Problem(
            422,
            'Send {"rules": <rule set>, "from_year": 2021, "to_year": 2025}.',
            errors=[field_error("rules", "required")],
        )
    return body


def what_if_router() -> APIRouter:
    router = APIRouter()

    @router.post(
        "/v1/what-if",
        tags=["what-if"],
        summary="Run a candidate rule set over the registered history (passed to the subsidy service)",
        description="Body and answer as the subsidy service's `POST /v1/simulations`, asked with the caller's key.",
    )
    async def run(request: Request) -> Response:
        key = await caller_key(request)
        body = await _candidate_body(request)
        return _passed(await request.app.state.runtime.subsidy.simulate(key, body))

    @router.get("/v1/what-if/{simulation_id}", tags=["what-if"], summary="A simulation run before (or still running)")
    async def again(request: Request, simulation_id: str) -> Response:
        key = await caller_key(request)
        return _passed(await request.app.state.runtime.subsidy.simulation(key, simulation_id))

    @router.get("/what-if", include_in_schema=False)
    async def page(request: Request) -> Response:
        if await signed_in(request) is None:
            return RedirectResponse("/login?next=/what-if", status_code=303)
        runtime = request.app.state.runtime
        try:
            programmes = await runtime.subsidy.programmes(request.cookies[COOKIE])
            body = _form(_in_force(programmes), current_year(runtime.clock()))
        except Problem as problem:
            body = (
                f'<section class="panel" id="whatif-unavailable"><h2>政策模拟 <span>Policy what-if</span></h2>'
                f'<p class="down">{escape(problem.detail)}</p></section>'
            )
        return render_page("政策模拟 Policy what-if", body, "", nav=_nav(), follow=False, scripts=("whatif.js",))

    return router


def _nav() -> str:
    return '<a href="/">总览 Overview</a> <a href="/logout" class="logout">退出 Sign out</a>'


def _in_force(programmes: dict[str, Any]) -> dict[str, Any]:
    rule_sets = programmes.get("rule_sets") or []
    current = next((r for r in rule_sets if r.get("id") == programmes.get("in_force")), None)
    if current is None:
        raise Problem(502, "The subsidy service lists no rule set in force.")
    return current


def _kinds_of(programme: dict[str, Any]) -> list[str]:
    return list(programme.get("beneficiary_kinds", programme.get("kinds")) or [])


def _checkboxes(name: str, options: dict[str, str], chosen: list[str]) -> str:
    return "".join(
        f'<label class="check"><input type="checkbox" name="{name}" value="{escape(value)}"'
        f"{' checked' if value in chosen else ''}> {escape(label)}</label>"
        for value, label in options.items()
    )


def _select(name: str, options: dict[str, str], chosen: Any, label: str) -> str:
    """A choice among the vocabulary's values; a value the vocabulary does not know (a newer rule set) is kept
    as an option of its own, so the candidate sends it back unchanged and the service judges it."""
    if chosen not in options:
        options = {**options, str(chosen): str(chosen)}
    choices = "".join(
        f'<option value="{escape(value)}"{" selected" if value == chosen else ""}>{escape(text)}</option>'
        for value, text in options.items()
    )
    return f'<select name="{name}" aria-label="{escape(label)}">{choices}</select>'


def _programme_rows(rules: dict[str, Any]) -> str:
    rows = []
    for p in rules.get("programmes", []):
        name = escape(p["programme"])
        label = PROGRAMME_LABELS.get(p["programme"], p["programme"])
        rows.append(
            f'<tr data-programme="{name}"><th scope="row">{escape(label)}'
            f'<div class="muted">{escape(str(p.get("clause", "")))}</div></th>'
            f"<td>{_select(f'base-{name}', BASE_LABELS, p.get('base'), f'{label} base')}</td>"
            f'<td><input name="rate-{name}" value="{escape(str(p["rate"]))}" inputmode="decimal" size="6"'
            f' aria-label="{escape(label)} rate"></td>'
            f'<td><input name="cap-{name}" value="{escape(str(p["cap"]))}" inputmode="decimal" size="12"'
            f' aria-label="{escape(label)} cap"></td>'
            f"<td>{_select(f'cap_scope-{name}', SCOPE_LABELS, p.get('cap_scope'), f'{label} cap scope')}</td>"
            f'<td class="kinds">{_checkboxes(f"kinds-{name}", KIND_LABELS, _kinds_of(p))}</td></tr>'
        )
    return "".join(rows)


def _form(rules: dict[str, Any], this_year: int) -> str:
    rules_json = json.dumps(rules, ensure_ascii=False).replace("</", "<\\/")
    regions = {
        r.code: {"zh": r.name_zh, "en": r.name_en, "level": r.level, "parent": r.parent}
        for r in ningxia_regions().values()
    }
    categories = {c: CATEGORY_LABELS[c] for c in CATEGORIES}
    title = f"{escape(str(rules.get('title', rules.get('id', ''))))} ({escape(str(rules.get('id', '')))})"
    form = f"""<h1>政策模拟 <span>Policy what-if</span></h1>
<section class="panel whatif" id="whatif">
  <h2>现行规则 <span>The rule set in force, as a candidate: change the numbers and run</span></h2>
  <p class="muted">{title}</p>
  <script type="application/json" id="whatif-rules">{rules_json}</script>
  <script type="application/json" id="whatif-regions">{json.dumps(regions, ensure_ascii=False)}</script>
  <script type="application/json" id="whatif-programme-labels">{json.dumps(PROGRAMME_LABELS, ensure_ascii=False)}</script>
  <form id="whatif-form" novalidate>
    <div class="table-wrap"><table>
      <thead><tr><th>项目 Programme</th><th>计算基数 Base</th><th>比例 Rate</th><th>上限 Cap (元)</th>
      <th>上限范围 Cap scope</th><th>受益主体 Beneficiary kinds</th></tr></thead>
      <tbody>{_programme_rows(rules)}</tbody>
    </table></div>
    <fieldset><legend>生效日期 Effective dates</legend>
      <label>自 From <input name="effective_from" value="{escape(str(rules.get("effective_from", "")))}"
        inputmode="numeric" size="11" placeholder="YYYY-MM-DD" aria-label="effective from"></label>
      <span class="muted">认定日（北京时间）在此之前的合同在方案下不予补助 Contracts certified before this day (Asia/Shanghai)
        earn nothing under the candidate</span></fieldset>
    <fieldset><legend>可补助合同类别 Eligible categories</legend>
      {_checkboxes("category", categories, list(rules.get("eligible_categories") or []))}</fieldset>
    <fieldset><legend>年度 Policy years</legend>
      <label>自 From <input name="from_year" value="{this_year - 4}" inputmode="numeric" size="5"></label>
      <label>至 To <input name="to_year" value="{this_year}" inputmode="numeric" size="5"></label></fieldset>
    <button type="submit" id="whatif-run">运行模拟 Run</button>
    <span id="whatif-status" role="status" aria-live="polite"></span>
    <progress id="whatif-progress" max="1" value="0" hidden></progress>
  </form>
  <div id="whatif-errors" class="down" hidden></div>
</section>"""
    panels = [
        chart_panel(
            "whatif-programmes",
            "按项目：现行与方案 <span>In force vs candidate, per programme</span>",
            EMPTY_BAR,
            "",
            hidden=True,
        ),
        chart_panel(
            "whatif-counties",
            "按县区：现行与方案 <span>In force vs candidate, per county</span>",
            {**EMPTY_BAR, "horizontal": True},
            "",
            tall=True,
            hidden=True,
        ),
        """<section class="panel" id="panel-whatif-years" hidden>
  <h2>按年度与项目 <span>By policy year and programme</span></h2>
  <div class="table-wrap" id="table-whatif-years"></div></section>""",
        """<section class="panel" id="panel-whatif-beneficiaries" hidden>
  <h2>变化最大的受益主体 <span>The 20 beneficiaries whose awards change most</span></h2>
  <div class="table-wrap" id="table-whatif-beneficiaries"></div></section>""",
    ]
    return form + "\n".join(panels)
