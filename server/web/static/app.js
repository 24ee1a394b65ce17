// evomcp's web view: fills the live pages (runs, a run, the genealogy) from the JSON API under /ui/api.
// Hand-written, no dependencies. Every value from the archive reaches the page as text (textContent,
// setAttribute), never as markup. The page records for automated checks how many live updates it applied
// (body[data-updates]) and whether its last one failed (body[data-error]).
"use strict";

(function () {
  var body = document.body;
  var P = body.dataset.prefix || "/ui";
  var SVGNS = "http://www.w3.org/2000/svg";
  var POLL_MS = 1500;
  body.dataset.updates = "0";

  // ---------------------------------------------------------------- DOM helpers

  function el(tag, attrs) {
    var e = document.createElement(tag);
    setAll(e, attrs);
    for (var i = 2; i < arguments.length; i++) add(e, arguments[i]);
    return e;
  }

  function sv(tag, attrs) {
    var e = document.createElementNS(SVGNS, tag);
    setAll(e, attrs);
    for (var i = 2; i < arguments.length; i++) add(e, arguments[i]);
    return e;
  }

  function setAll(e, attrs) {
    if (!attrs) return;
    Object.keys(attrs).forEach(function (k) {
      var v = attrs[k];
      if (v === null || v === undefined || v === false) return;
      if (k === "text") e.textContent = String(v);
      else e.setAttribute(k, String(v));
    });
  }

  function add(parent, child) {
    if (child === null || child === undefined || child === false) return;
    if (Array.isArray(child)) { child.forEach(function (c) { add(parent, c); }); return; }
    parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }

  function byId(id) { return document.getElementById(id); }

  // replace the children of #id by the rest of the arguments (nodes, text, arrays of them)
  function fill(id) {
    var box = byId(id);
    if (!box) return;
    var frag = document.createDocumentFragment();
    add(frag, Array.prototype.slice.call(arguments, 1));
    box.replaceChildren(frag);
  }

  function table(head, rows) {
    return [el("thead", null, el("tr", null, head.map(function (h) { return el("th", { text: h }); }))),
            el("tbody", null, rows.map(function (r) {
              return el("tr", null, r.map(function (c) { return el("td", null, c); }));
            }))];
  }

  function link(href, text, cls) { return el("a", { href: href, text: text, "class": cls }); }
  function programUrl(run, id) { return P + "/runs/" + run + "/programs/" + id; }

  // full precision: JavaScript's shortest round-trip text, as Python's repr
  function score(x) { return x === null || x === undefined ? "none" : String(x); }
  function money(x) { return x ? "$" + Number(x).toFixed(6) : "none"; }
  function seconds(t) {
    if (t < 120) return t.toFixed(1) + " s";
    if (t < 7200) return (t / 60).toFixed(1) + " min";
    return (t / 3600).toFixed(2) + " h";
  }

  // ---------------------------------------------------------------- fetching, politely

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", cache: "no-store" }).then(function (r) {
      if (r.status === 401) throw new Error("signed out: open the login link the server printed again");
      return r.json().then(function (data) {
        if (!r.ok) throw new Error(data && data.error ? data.error : "HTTP " + r.status);
        return data;
      });
    });
  }

  // call `step` now and again `every` ms after each answer (longer after a failure); say how it went
  function repeat(step, every) {
    var status = byId("live-status");
    function once() {
      step().then(function () {
        body.dataset.updates = String(Number(body.dataset.updates) + 1);
        delete body.dataset.error;
        status.textContent = "live · updated " + new Date().toLocaleTimeString();
        status.className = "live ok";
        setTimeout(once, every);
      }, function (err) {
        body.dataset.error = String(err && err.message || err);
        status.textContent = "not updating: " + body.dataset.error;
        status.className = "live bad";
        setTimeout(once, every * 3);
      });
    }
    once();
  }

  // ---------------------------------------------------------------- axes (as server/svg.py)

  function niceStep(span, count) {
    var raw = span / Math.max(count, 1);
    var mag = Math.pow(10, Math.floor(Math.log10(raw)));
    var ms = [1, 2, 2.5, 5, 10];
    for (var i = 0; i < ms.length; i++) if (raw <= ms[i] * mag) return ms[i] * mag;
    return 10 * mag;
  }

  function ticks(lo, hi, count, integer) {
    var step = niceStep(hi - lo, count);
    if (integer) step = Math.max(1, Math.round(step));
    var out = [], first = Math.ceil(lo / step - 1e-9) * step;
    for (var v = first; v <= hi + step * 1e-9 && out.length < 50; v = first + out.length * step) {
      out.push(Math.abs(v) < step * 1e-9 ? 0 : v);
    }
    var decimals = 0;
    while (decimals < 12 && Math.abs(Number(step.toFixed(decimals)) - step) > step * 1e-9) decimals++;
    return out.map(function (v) { return [v, decimals <= 6 ? v.toFixed(decimals) : v.toPrecision(6)]; });
  }

  // the best line's own range with a margin; the target inside only when near (as score_axis)
  function scoreAxis(values, target) {
    var lo = Math.min.apply(null, values), hi = Math.max.apply(null, values);
    var near = target !== null && target >= lo && target <= hi + Math.max(hi - lo, 1e-12 * Math.max(1, Math.abs(hi)));
    if (near) { lo = Math.min(lo, target); hi = Math.max(hi, target); }
    if (hi - lo < 1e-12 * Math.max(1, Math.abs(hi))) {
      var half = Math.abs(hi) * 0.05 || 0.5;
      return { lo: lo - half, hi: hi + half, near: near };
    }
    var pad = 0.08 * (hi - lo);
    return { lo: lo - pad, hi: hi + pad, near: near };
  }

  function plotFrame(width, height, xdom, ydom, xlabel, ylabel, opts) {
    opts = opts || {};
    var L = 70, R = width - 16, T = 22, B = height - 38;
    var f = {
      L: L, R: R, T: T, B: B,
      x: function (v) { return L + (v - xdom[0]) / ((xdom[1] - xdom[0]) || 1) * (R - L); },
      y: function (v) { return B - (v - ydom[0]) / ((ydom[1] - ydom[0]) || 1) * (B - T); },
      svg: sv("svg", { viewBox: "0 0 " + width + " " + height, width: width, height: height, role: "img",
                       "aria-label": opts.label || ylabel })
    };
    ticks(ydom[0], ydom[1], 5, false).forEach(function (t) {
      var py = f.y(t[0]).toFixed(1);
      add(f.svg, [sv("line", { "class": "grid", x1: L, x2: R, y1: py, y2: py }),
                  sv("text", { "class": "tick", x: L - 6, y: Number(py) + 4, "text-anchor": "end",
                               text: (opts.yprefix || "") + t[1] })]);
    });
    ticks(xdom[0], xdom[1], 7, !!opts.xinteger).forEach(function (t) {
      var px = f.x(t[0]).toFixed(1);
      add(f.svg, [sv("line", { "class": "axis", x1: px, x2: px, y1: B, y2: B + 4 }),
                  sv("text", { "class": "tick", x: px, y: B + 16, "text-anchor": "middle",
                               text: opts.xfmt ? opts.xfmt(t[0]) : t[1] })]);
    });
    add(f.svg, [sv("line", { "class": "axis", x1: L, x2: R, y1: B, y2: B }),
                sv("line", { "class": "axis", x1: L, x2: L, y1: T, y2: B }),
                sv("text", { "class": "label", x: (L + R) / 2, y: height - 6, "text-anchor": "middle", text: xlabel }),
                sv("text", { "class": "label", x: 14, y: (T + B) / 2, "text-anchor": "middle",
                             transform: "rotate(-90 14 " + (T + B) / 2 + ")", text: ylabel })]);
    return f;
  }

  // best-so-far step line over evaluations (x = 0) or seconds (x = 1), scores as dots, failures as ticks
  function scoreChart(id, run, steps, points, xmax, target, which) {
    var box = byId(id);
    if (!box) return;
    if (!steps.length) { fill(id, el("p", { "class": "empty", text: "No correct program yet." })); return; }
    var width = Math.max(480, Math.min(box.clientWidth || 900, 1100)), height = 300;
    var axis = scoreAxis(steps.map(function (p) { return p[2]; }), target);
    var xdom = [0, Math.max(xmax, steps[steps.length - 1][which], 1)];
    var f = plotFrame(width, height, xdom, [axis.lo, axis.hi], which ? "seconds since the run started" :
                      "evaluations (in the order they finished)", "score",
                      { xinteger: !which, xfmt: which ? function (v) { return seconds(v); } : null });
    var below = 0, failed = 0;
    points.forEach(function (p) {
      var px = f.x(p[which]).toFixed(1);
      if (p[2] === null) {
        failed++;
        add(f.svg, sv("line", { "class": "fail", x1: px, x2: px, y1: f.B - 6, y2: f.B }));
      } else if (p[2] < axis.lo) {
        below++;
        add(f.svg, sv("path", { "class": "below", d: "M" + px + "," + (f.B - 1) + "l-3,-5h6z" }));
      } else {
        add(f.svg, sv("circle", { "class": "dot", cx: px, cy: f.y(p[2]).toFixed(1), r: 2.2 }));
      }
    });
    if (target !== null && axis.near) {
      var ty = f.y(target).toFixed(1);
      add(f.svg, [sv("line", { "class": "target", x1: f.L, x2: f.R, y1: ty, y2: ty }),
                  sv("text", { "class": "tick target-text", x: f.R - 4, y: ty - 5, "text-anchor": "end",
                               text: "target " + score(target) })]);
    } else if (target !== null) {
      add(f.svg, sv("text", { "class": "tick target-text", x: f.R - 4, y: f.T - 6, "text-anchor": "end",
                              text: "target " + score(target) + " is above this range" }));
    }
    var d = "M" + f.x(steps[0][which]).toFixed(1) + "," + f.y(steps[0][2]).toFixed(1);
    for (var i = 1; i < steps.length; i++) {
      d += "H" + f.x(steps[i][which]).toFixed(1) + "V" + f.y(steps[i][2]).toFixed(1);
    }
    d += "H" + f.x(xdom[1]).toFixed(1);
    add(f.svg, sv("path", { "class": "bestline", d: d }));
    steps.forEach(function (p) {
      add(f.svg, sv("a", { href: programUrl(run, p[3]) },
                    sv("circle", { "class": "step", cx: f.x(p[which]).toFixed(1), cy: f.y(p[2]).toFixed(1), r: 3.5 },
                       sv("title", { text: "program " + p[3] + ": " + score(p[2]) }))));
    });
    box.dataset.steps = String(steps.length);
    box.dataset.points = String(points.length);
    fill(id, f.svg);
    return { below: below, failed: failed };
  }

  // ---------------------------------------------------------------- the runs page

  function initRuns() {
    repeat(function () {
      return getJSON(P + "/api/runs").then(function (d) {
        byId("runs-empty").hidden = d.runs.length > 0;
        var rows = d.runs.map(function (r) {
          var progress = r.candidates + (r.budget ? " / " + r.budget : "") + " candidates" +
                         (r.in_flight ? " (" + r.in_flight + " in flight)" : "");
          return [link(P + "/runs/" + r.id, "#" + r.id + " " + r.name), r.task,
                  el("span", { "class": "status " + r.status, title: r.reason || "", text: r.status }),
                  progress,
                  r.best_id ? link(programUrl(r.id, r.best_id), score(r.best)) : "none",
                  money(r.cost_usd), r.isolation,
                  el("span", { "class": "scoring " + r.scoring, title: r.scoring_detail, text: r.scoring })];
        });
        fill("runs", table(["run", "task", "status", "progress", "best", "cost", "isolation",
                                          "scores"], rows));
      });
    }, 3000);
  }

  // ---------------------------------------------------------------- a run, live

  function initRun() {
    var run = Number(body.dataset.run);
    var target = body.dataset.target ? Number(body.dataset.target) : null;
    var cursor = null, steps = [], points = [], best = null, count = 0, lastT = 0, drawn = null;

    function take(p) {
      count = p[0];
      lastT = Math.max(lastT, p[1]);
      if (p[2] !== null && (best === null || p[2] > best)) { best = p[2]; steps.push(p); }
      points.push(p);
    }

    function tick() {
      var url = P + "/api/runs/" + run + "/live" + (cursor ? "?cursor=" + encodeURIComponent(cursor) : "");
      return getJSON(url).then(function (d) {
        if (d.reset) {
          steps = d.steps; points = d.points; lastT = d.last_t || 0;
          best = steps.length ? steps[steps.length - 1][2] : null;
        } else {
          d.points.forEach(take);
        }
        if (points.length > 6000) points = points.filter(function (_, i) { return i % 2 === 0; });
        cursor = d.cursor;
        count = parseInt(cursor, 10);
        render(d.state);
        if (!body.dataset.drawnMs) body.dataset.drawnMs = performance.now().toFixed(0);
      });
    }

    function render(s) {
      var r = s.run;
      target = r.target;
      var gain = s.best && s.seed_score !== null ? s.best.score - s.seed_score : null;
      var facts = [
        ["status", el("span", null, el("span", { "class": "status " + r.status, id: "run-status", text: r.status }),
                      r.reason ? " (" + r.reason + ")" : "")],
        ["task", r.task === r.task_path ? r.task : r.task + " (" + r.task_path + ")"],
        ["progress", el("span", { id: "progress", text: s.candidates + (s.budget ? " / " + s.budget : "") +
                                  " candidates evaluated" + (s.in_flight ? ", " + s.in_flight + " in flight" : "") })],
        ["best score", s.best ? el("span", null, el("a", { href: programUrl(run, s.best.id), id: "best-score",
                                                           "class": "big", text: score(s.best.score) }),
                                   " (program #" + s.best.id + ", generation " + s.best.generation + ", island " +
                                   s.best.island + ")") : "none yet"],
        ["from the seed", s.seed_score === null ? "the seed has no score" :
                          score(s.seed_score) + (gain !== null ? " (gain " + (gain >= 0 ? "+" : "") + score(gain) + ")" : "")],
        ["target", target === null ? "none" : score(target) + (s.best ? " (gap " + score(target - s.best.score) + ")" : "")],
        ["scores", s.scoring_detail],
        ["isolation", s.isolation],
        ["cost", money(s.cost_usd)],
        ["driver", s.driver ? s.driver.state + (s.driver.reason ? " (" + s.driver.reason + ")" : "") +
                              (s.driver.refused ? "; " + s.driver.refused + " steps produced no candidate" : "")
                            : "none (an agent, or nobody, drives this run)"],
        ["updated", el("span", { id: "elapsed", text: seconds(lastT) + " after the start, " + count + " evaluations" })]
      ];
      if (s.driver && s.driver.failing_models && Object.keys(s.driver.failing_models).length) {
        facts.push(["failing models", Object.keys(s.driver.failing_models).map(function (m) {
          return m + ": " + s.driver.failing_models[m];
        }).join("; ")]);
      }
      fill("facts", facts.map(function (f) { return [el("dt", { text: f[0] }), el("dd", null, f[1])]; }));
      body.dataset.best = s.best ? score(s.best.score) : "";

      var marks = scoreChart("chart-evals", run, steps, points, count, target, 0);
      scoreChart("chart-time", run, steps, points, lastT, target, 1);
      if (marks && steps.length) {
        byId("caption-evals").textContent = "Best score so far (line; each point where it rose links to that " +
          "program), the scores of correct programs (dots)" + (marks.failed ? ", failed or incorrect ones (red " +
          "ticks)" : "") + (marks.below ? ", " + marks.below + " far below the best (marked on the axis)" : "") +
          ". From " + score(steps[0][2]) + " to " + score(best) + "; the axis spans the best line's range" +
          (points.length < count ? "; " + points.length + " of the " + count + " evaluations are drawn" : "") + ".";
      }

      if (s.best && !s.best.drawing && drawn === null) {
        drawn = -1;
        fill("best-drawing", el("p", { "class": "empty", text: "This task has no drawing of its solutions." }));
      } else if (s.best && s.best.drawing && s.best.id !== drawn) {
        drawn = s.best.id;
        var img = el("img", { src: programUrl(run, s.best.id) + "/drawing.svg", alt: "the best program's solution" });
        img.addEventListener("error", function () {
          fill("best-drawing", el("p", { "class": "empty", text: "This task has no drawing of its solutions." }));
        });
        fill("best-drawing", el("a", { href: programUrl(run, s.best.id) }, img));
      }

      fill("islands", table(["island", "programs", "correct", "failed or incorrect", "best"],
        s.islands.map(function (i) {
          return [String(i.island), String(i.programs), String(i.correct), String(i.failed),
                  i.best_id ? link(programUrl(run, i.best_id), score(i.best)) : "none"];
        })));
      var num = function (x, digits) { return x === null || x === undefined ? "–" : digits ? Number(x).toFixed(digits) : String(x); };
      fill("arms", table(["arm", "proposals", "correct", "bandit pulls", "in flight", "wins",
                                              "mean reward", "cost", "steps failed", "newest failure"],
        s.arms.map(function (a) {
          return [el("span", { text: a.name + (a.disabled ? " (given up: " + a.disabled + ")" : "") }),
                  num(a.proposals), num(a.correct), num(a.pulls), num(a.pending), num(a.wins),
                  num(a.mean_reward, 3), a.cost_usd === null ? "–" : money(a.cost_usd), num(a.failed_steps),
                  el("span", { "class": "clip", title: a.last_failure || "", text: a.last_failure || "" })];
        })));
      fill("patch-types", s.patch_types.length ? table(["patch type", "pulls", "in flight", "wins", "mean reward"],
        s.patch_types.map(function (a) {
          return [a.name, num(a.pulls), num(a.pending), num(a.wins), num(a.mean_reward, 3)];
        })) : el("caption", { text: "No driver chose patch types for this run (perturb rewrites whole programs)." }));
      var names = Object.keys(s.models);
      fill("models", names.length ? table(["model", "calls", "ok", "failed", "failing now",
                                                                 "cost", "tokens in / out", "newest error"],
        names.map(function (m) {
          var x = s.models[m];
          return [m, num(x.calls), num(x.ok), num(x.failed), num(x.failing), money(x.cost_usd),
                  num(x.prompt_tokens) + " / " + num(x.completion_tokens),
                  el("span", { "class": "clip", title: x.last_error || "", text: x.last_error || "" })];
        })) : [el("caption", { text: "No model was called (offline operators or an external agent)." })]);

      byId("cost-text").textContent = s.cost_usd > 0 ? money(s.cost_usd) + " spent on model calls." :
        "Nothing spent: no model call of this run cost anything.";
      var costBox = byId("chart-cost");
      costBox.hidden = !(s.cost_usd > 0 && s.costs.length);
      if (!costBox.hidden) {
        var c = s.costs, top = c[c.length - 1][1];
        var f = plotFrame(Math.max(480, Math.min(costBox.clientWidth || 900, 1100)), 220,
                          [0, Math.max(lastT, c[c.length - 1][0], 1)], [0, top * 1.06], "seconds since the run started",
                          "cumulative cost", { yprefix: "$", xfmt: seconds });
        var d = "M" + f.x(0) + "," + f.y(0);
        c.forEach(function (p) { d += "H" + f.x(p[0]).toFixed(1) + "V" + f.y(p[1]).toFixed(1); });
        add(f.svg, sv("path", { "class": "cost", d: d }));
        fill("chart-cost", f.svg);
      }

      var recent = points.slice(-12).reverse();
      fill("recent", table(["evaluation", "program", "score", "at"], recent.map(function (p) {
        return [String(p[0]), link(programUrl(run, p[3]), "#" + p[3]),
                p[2] === null ? el("span", { "class": "status failed", text: "failed or incorrect" }) : score(p[2]),
                seconds(p[1])];
      })));
    }

    repeat(tick, POLL_MS);
  }

  // ---------------------------------------------------------------- the genealogy

  var RAMP = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];  // low to high

  function ramp(t) {
    t = Math.max(0, Math.min(1, t)) * (RAMP.length - 1);
    var i = Math.min(Math.floor(t), RAMP.length - 2), f = t - i;
    var c = RAMP[i].map(function (v, k) { return Math.round(v + (RAMP[i + 1][k] - v) * f); });
    return "rgb(" + c.join(",") + ")";
  }

  function initTree() {
    var run = Number(body.dataset.run);
    var root = body.dataset.root, limit = body.dataset.limit, from = body.dataset.from;
    var drawnTotal = null, latest = null;
    var query = "limit=" + encodeURIComponent(limit) + (root ? "&root=" + encodeURIComponent(root) : "");
    var api = P + "/api/runs/" + run + "/tree?" + query + (from ? "&from=" + encodeURIComponent(from) : "");
    // the drawing stays still under the mouse; newer programs are announced, and drawn on request
    var redraw = el("button", { type: "button", id: "redraw", hidden: "" });
    redraw.addEventListener("click", function () {
      if (latest) { drawnTotal = latest.total; drawTree(run, latest); pages(latest); }
      redraw.hidden = true;
    });
    byId("tree-info").after(redraw);
    repeat(function () {
      return getJSON(api).then(function (t) {
        latest = t;
        if (drawnTotal === null) { drawnTotal = t.total; drawTree(run, t); pages(t); }
        else if (t.total !== drawnTotal) {
          redraw.textContent = "draw the " + (t.total - drawnTotal) + " new programs";
          redraw.hidden = false;
        }
      });
    }, 5000);

    // a window of generations is one page: links to the earlier, the later and the newest ones
    function pages(t) {
      if (!t.window) return;
      var here = P + "/runs/" + run + "/tree?" + query + "&from=";
      var w = t.window, span = t.span, out = [];
      if (w[0] > t.generations[0]) {
        out.push(link(here + t.generations[0], "« first"), " ", link(here + Math.max(t.generations[0], w[0] - span),
                 "‹ earlier generations"), " ");
      }
      out.push(el("b", { text: "generations " + w[0] + "–" + w[1] + " of " + t.generations[0] + "–" +
                                 t.generations[1] }));
      if (w[1] < t.generations[1]) {
        out.push(" ", link(here + (w[1] + 1), "later generations ›"), " ",
                 link(P + "/runs/" + run + "/tree?" + query, "newest »"));
      }
      fill("tree-pages", out);
    }
  }

  function drawTree(run, t) {
    var n = t.ids.length;
    var info = t.total + " programs in the run" + (t.root !== null ? ", " + t.in_scope + " under #" + t.root : "") +
               (t.window ? ", " + t.in_window + " in generations " + t.window[0] + "–" + t.window[1] : "") +
               "; " + (t.shown < t.in_window ? "showing " + t.shown + ": the lineages of the best and the newest " +
               "programs, the rest collapsed into +N" : "showing all " + t.shown) +
               (t.best_id !== null ? "; best of the run #" + t.best_id : "") + ".";
    byId("tree-info").textContent = info;
    if (!n) { fill("tree", el("p", { "class": "empty", text: "No programs yet." })); return; }
    var gmin = Math.min.apply(null, t.generation), gmax = Math.max.apply(null, t.generation);
    var box = byId("tree");
    var avail = Math.max(600, (box.clientWidth || 1000) - 120);
    var dx = Math.max(6, Math.min(48, avail / Math.max(1, gmax - gmin)));
    var dy = t.rows > 400 ? 8 : 14;
    var width = Math.ceil(60 + (gmax - gmin) * dx + 90), height = Math.ceil(30 + t.rows * dy + 20);
    var X = function (i) { return 40 + (t.generation[i] - gmin) * dx; };
    var Y = function (i) { return 24 + t.row[i] * dy; };
    // colour by rank among the drawn scores, so a few far-off ones do not squash the others into one colour
    var ranked = t.score.filter(function (s) { return s !== null; }).sort(function (a, b) { return a - b; });
    function rank(s) {
      var a = 0, b = ranked.length - 1;
      while (a < b) { var m = (a + b) >> 1; if (ranked[m] < s) a = m + 1; else b = m; }
      return ranked.length > 1 ? a / (ranked.length - 1) : 1;
    }
    var svg = sv("svg", { viewBox: "0 0 " + width + " " + height, width: width, height: height,
                          "class": "tree-svg", role: "img", "aria-label": "genealogy" });
    var gen = ticks(gmin, Math.max(gmax, gmin + 1), Math.min(12, Math.max(2, Math.floor(width / 90))), true);
    gen.forEach(function (g) {
      var x = 40 + (g[0] - gmin) * dx;
      add(svg, [sv("line", { "class": "grid", x1: x, x2: x, y1: 16, y2: height - 4 }),
                sv("text", { "class": "tick", x: x, y: 11, "text-anchor": "middle", text: "gen " + g[1] })]);
    });
    var plain = "", moved = "", above = "";
    for (var i = 0; i < n; i++) {
      var p = t.parent[i];
      if (t.cut[i]) above += "M" + (X(i) - 14).toFixed(1) + "," + Y(i).toFixed(1) + "H" + X(i).toFixed(1);
      if (p < 0) continue;
      var seg = "M" + X(p).toFixed(1) + "," + Y(p).toFixed(1) + "V" + Y(i).toFixed(1) + "H" + X(i).toFixed(1);
      if (t.migrated[i]) moved += seg; else plain += seg;
    }
    add(svg, [sv("path", { "class": "edge", d: plain }), sv("path", { "class": "edge migrated", d: moved }),
              sv("path", { "class": "edge above", d: above })]);
    var r = dy > 10 ? 4 : 3;
    for (var j = 0; j < n; j++) {
      var id = t.ids[j], s = t.status[j], x = X(j).toFixed(1), y = Y(j).toFixed(1);
      var what = s === 2 ? score(t.score[j]) : ["waiting", "running", "", "incorrect", "failed"][s];
      var title = "#" + id + " · generation " + t.generation[j] + " · island " + t.island[j] + " · " + what +
                  (t.migrated[j] ? " · moved here by a migration" : "") +
                  (t.cut[j] ? " · its parent is in an earlier window of generations" : "") +
                  (t.hidden[j] ? " · " + t.hidden[j] + " more below" + (t.hidden_best[j] !== null ?
                   " (best " + score(t.hidden_best[j]) + ")" : "") : "");
      var mark;
      if (s === 2) {
        mark = sv("circle", { cx: x, cy: y, r: r, fill: ramp(rank(t.score[j])),
                              "class": "node" + (id === t.best_id ? " best" : "") + (t.migrated[j] ? " moved" : "") });
      } else if (s >= 3) {
        mark = sv("path", { "class": "node failed", d: "M" + (x - r) + "," + (y - r) + "l" + 2 * r + "," + 2 * r +
                            "m0," + (-2 * r) + "l" + (-2 * r) + "," + 2 * r });
      } else {
        mark = sv("circle", { cx: x, cy: y, r: r, "class": "node waiting" });
      }
      add(mark, sv("title", { text: title }));
      add(svg, sv("a", { href: programUrl(run, id), "class": "program", "data-id": id }, mark));
      if (t.hidden[j]) {
        add(svg, sv("a", { href: P + "/runs/" + run + "/tree?root=" + id + "&limit=" + body.dataset.limit,
                           "class": "more" },
                    sv("text", { x: Number(x) + 1, y: Number(y) - r - 1.5, text: "+" + t.hidden[j] },
                       sv("title", { text: "open the " + t.hidden[j] + " descendants of #" + id + " left out" }))));
      }
    }
    box.dataset.nodes = String(n);
    fill("tree", svg);
    body.dataset.drawnMs = performance.now().toFixed(0);  // since navigation began (bench/ui_tree.py reads it)
  }

  var start = { runs: initRuns, run: initRun, tree: initTree }[body.dataset.page];
  if (start) start();
  body.dataset.ready = "1";
})();
