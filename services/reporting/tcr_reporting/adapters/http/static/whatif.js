/* 政策模拟 Policy what-if: builds the candidate from the rule set in force (exactly as GET /v1/programmes gives it)
   with the numbers edited in the form, posts it to /v1/what-if (the reporting service passes it to the subsidy
   service with the signed-in key), and draws in-force vs candidate per programme and per county, each chart from
   the same rows as the table under it. Money stays exact: strings on the wire, integer fen when summed here. */
(function () {
  "use strict";
  var form = document.getElementById("whatif-form");
  if (!form) { return; }
  var rules = JSON.parse(document.getElementById("whatif-rules").textContent);
  var regions = JSON.parse(document.getElementById("whatif-regions").textContent);
  var status = document.getElementById("whatif-status");
  var errorsBox = document.getElementById("whatif-errors");
  var button = document.getElementById("whatif-run");
  var bar = document.getElementById("whatif-progress");
  var PROGRAMMES = JSON.parse(document.getElementById("whatif-programme-labels").textContent);  // name -> label, in order
  var POLL_MS = 1000;

  function fen(text) {  // "-1234.5" -> -123450 (exact: no floating point on the way)
    var s = String(text).trim(), sign = 1;
    if (s.charAt(0) === "-") { sign = -1; s = s.slice(1); }
    var parts = s.split(".");
    var cents = ((parts[1] || "") + "00").slice(0, 2);
    return sign * (Number(parts[0] || "0") * 100 + Number(cents));
  }
  function yuan(f) {  // integer fen -> "1234.50" (for chart data)
    var a = Math.abs(f), s = Math.floor(a / 100) + "." + String(a % 100).padStart(2, "0");
    return (f < 0 ? "-" : "") + s;
  }
  function money(f) {  // integer fen -> "1,234.50" (for tables)
    var a = Math.abs(f);
    return (f < 0 ? "-" : "") + Math.floor(a / 100).toLocaleString("en-US") + "." + String(a % 100).padStart(2, "0");
  }
  function checked(name) {
    return Array.prototype.map.call(form.querySelectorAll("input[name='" + name + "']:checked"),
      function (el) { return el.value; });
  }
  function field(name) { return form.querySelector("[name='" + name + "']"); }
  function value(name) { return field(name).value.trim(); }

  function candidate() {
    var c = JSON.parse(JSON.stringify(rules));
    c.effective_from = value("effective_from");
    c.programmes.forEach(function (p) {
      p.base = value("base-" + p.programme);
      p.rate = value("rate-" + p.programme);
      p.cap = value("cap-" + p.programme);
      p.cap_scope = value("cap_scope-" + p.programme);
      p[("beneficiary_kinds" in p || !("kinds" in p)) ? "beneficiary_kinds" : "kinds"] = checked("kinds-" + p.programme);
    });
    c.eligible_categories = checked("category");
    return c;
  }
  // "rules.programmes[2].cap_scope" -> the form field it names (cap_scope-<programme>), to mark it invalid
  function fieldNamed(path) {
    var m = /^rules\.(?:programmes\[(\d+)\]\.)?([a-z_]+)/.exec(path || "");
    if (!m) { return null; }
    var name = m[2] === "beneficiary_kinds" || m[2] === "kinds" ? "kinds" : m[2];
    if (m[1] === undefined) { return name === "eligible_categories" ? field("category") : field(name); }
    var p = rules.programmes[Number(m[1])];
    return p ? field(name + "-" + p.programme) : null;
  }
  function clearInvalid() {
    Array.prototype.forEach.call(form.querySelectorAll("[aria-invalid]"), function (node) {
      node.removeAttribute("aria-invalid");
    });
  }

  function el(tag, text, cls) {
    var node = document.createElement(tag);
    if (text !== undefined) { node.textContent = text; }
    if (cls) { node.className = cls; }
    return node;
  }
  function table(headers, rows, numericFrom) {
    var t = el("table"), head = el("tr"), body = el("tbody");
    headers.forEach(function (h) { head.appendChild(el("th", h)); });
    t.appendChild(el("thead")).appendChild(head);
    rows.forEach(function (row) {
      var tr = el("tr");
      row.forEach(function (cell, i) { tr.appendChild(el("td", String(cell), i >= numericFrom ? "num" : undefined)); });
      body.appendChild(tr);
    });
    t.appendChild(body);
    return t;
  }
  function show(id, spec, tableNode) {
    var panel = document.getElementById("panel-" + id);
    panel.hidden = false;
    if (spec) { document.getElementById("spec-" + id).textContent = JSON.stringify(spec); }
    var wrap = document.getElementById("table-" + id);
    wrap.replaceChildren(tableNode);
  }

  function sums(rows, keyOf) {  // rows -> ordered [{key, in_force, candidate, difference, awards, capped}] in fen
    var byKey = {}, order = [];
    rows.forEach(function (r) {
      var k = keyOf(r);
      if (k === null) { return; }
      if (!byKey[k]) { byKey[k] = { key: k, in_force: 0, candidate: 0, difference: 0, awards: 0, capped: 0 }; order.push(k); }
      var s = byKey[k];
      s.in_force += fen(r.in_force); s.candidate += fen(r.candidate); s.difference += fen(r.difference);
      s.awards += Number(r.awards || 0); s.capped += Number(r.capped || 0);
    });
    return order.map(function (k) { return byKey[k]; });
  }
  function comparison(labels, list) {
    return { type: "bar", unit: "元 yuan", x: labels,
             series: [{ name: "现行 In force", data: list.map(function (s) { return yuan(s.in_force); }) },
                      { name: "方案 Candidate", data: list.map(function (s) { return yuan(s.candidate); }) }] };
  }
  var FIGURES = ["现行 In force (元)", "方案 Candidate (元)", "差额 Difference (元)", "奖补笔数 Awards", "封顶笔数 Capped"];
  function figures(s) { return [money(s.in_force), money(s.candidate), money(s.difference), s.awards, s.capped]; }

  function render(simulation) {
    // the subsidy service keeps a simulation as {id, created_by, candidate, ..., result: {totals, regions, ...}}
    var result = simulation.result || simulation;
    var totals = result.totals || [];
    var order = Object.keys(PROGRAMMES);
    var perProgramme = sums(totals, function (r) { return r.programme; }).sort(function (a, b) {
      return order.indexOf(a.key) - order.indexOf(b.key);
    });
    show("whatif-programmes", comparison(perProgramme.map(function (s) { return PROGRAMMES[s.key] || s.key; }), perProgramme),
      table(["项目 Programme"].concat(FIGURES),
        perProgramme.map(function (s) { return [PROGRAMMES[s.key] || s.key].concat(figures(s)); }), 1));

    var perCounty = sums(result.regions || [], function (r) {
      var region = regions[r.region];
      return region && region.level === "county" ? r.region : null;
    }).sort(function (a, b) { return a.key < b.key ? -1 : 1; });
    var name = function (code) { return regions[code].zh + " " + regions[code].en; };
    var countySpec = comparison(perCounty.map(function (s) { return regions[s.key].zh; }), perCounty);
    countySpec.horizontal = true;
    show("whatif-counties", countySpec,
      table(["县区 County", "地市 Prefecture"].concat(FIGURES), perCounty.map(function (s) {
        return [name(s.key), regions[regions[s.key].parent].zh].concat(figures(s));
      }), 2));

    show("whatif-years", null, table(["年度 Year", "项目 Programme"].concat(FIGURES), totals.map(function (r) {
      return [r.policy_year, PROGRAMMES[r.programme] || r.programme,
              money(fen(r.in_force)), money(fen(r.candidate)), money(fen(r.difference)), r.awards, r.capped];
    }), 2));

    var people = result.beneficiaries || [];
    var columns = people.length ? Object.keys(people[0]) : ["beneficiary"];
    show("whatif-beneficiaries", null, table(columns, people.map(function (p) {
      return columns.map(function (c) {
        var v = p[c];
        if (typeof v === "string" && /^-?\d+\.\d{2}$/.test(v)) { return money(fen(v)); }
        return v === null || v === undefined ? "" : (typeof v === "object" ? JSON.stringify(v) : v);
      });
    }), 0));
    window.tcrDashboard.draw();
  }

  function problem(body, code) {
    errorsBox.hidden = false;
    errorsBox.replaceChildren(el("p", (body && (body.detail || body.title)) || ("HTTP " + code)));
    var list = el("ul");
    ((body && body.errors) || []).forEach(function (e) {
      list.appendChild(el("li", (e.field || "") + ": " + (e.message || "")));
      var input = fieldNamed(e.field);
      if (input) { input.setAttribute("aria-invalid", "true"); }
    });
    if (list.childNodes.length) { errorsBox.appendChild(list); }
    status.textContent = "未完成 Not run";
    bar.hidden = true;
  }

  function progressed(job) {  // a running job: {status: "running", progress: {stage, done, total}}
    var p = (job && job.progress) || {};
    var text = "计算中 Running…";
    if (p.stage) { text += " " + p.stage; }
    if (p.total) {
      text += " " + Number(p.done).toLocaleString("en-US") + " / " + Number(p.total).toLocaleString("en-US");
      bar.max = p.total;
      bar.value = p.done;
    } else {
      bar.removeAttribute("value");  // not known yet: an indeterminate bar
    }
    bar.hidden = false;
    status.textContent = text;
  }

  function answer(response) {
    return response.text().then(function (text) {
      var body = null;
      try { body = text ? JSON.parse(text) : null; } catch (e) { body = { detail: text }; }
      return { code: response.status, body: body, location: response.headers.get("Location") };
    });
  }

  function settle(reply) {
    var job = reply.body || {};
    if ((reply.code === 202 || (reply.code === 200 && job.status === "running")) && reply.location) {
      progressed(job);  // a long history: the subsidy service runs it as a job, polled until done or failed
      return new Promise(function (resolve) { window.setTimeout(resolve, POLL_MS); }).then(function () {
        return fetch(reply.location, { credentials: "same-origin", headers: { "Accept": "application/json" } })
          .then(answer).then(function (next) { next.location = next.location || reply.location; return settle(next); });
      });
    }
    if ((reply.code === 200 || reply.code === 201) && job.status === "failed") {
      problem({ detail: "模拟失败 The simulation failed: " + (job.error || "") }, reply.code);
      return null;
    }
    if (reply.code === 200 || reply.code === 201) {
      render(reply.body);
      status.textContent = "完成 Done";
      bar.hidden = true;
      return null;
    }
    problem(reply.body, reply.code);
    return null;
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    errorsBox.hidden = true;
    clearInvalid();
    button.disabled = true;
    status.textContent = "计算中 Running…";
    var body = { rules: candidate(), from_year: Number(value("from_year")), to_year: Number(value("to_year")) };
    fetch("/v1/what-if", {
      method: "POST", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body)
    }).then(answer).then(settle)
      .catch(function (err) { problem({ detail: String(err) }, 0); })
      .then(function () { button.disabled = false; });
  });
})();
