//! SLO definitions in Sloth's `prometheus/v1` format and OpenSLO v1 `kind: SLO` objects →
//! [`ImportedSlo`]s: the availability objective and the error/total queries of the
//! `prometheus:` block (`WINDOW_PLACEHOLDER`, `{{.window}}`, in both queries).
//!
//! - Sloth: `version: prometheus/v1`, `service`, `slos[].name`, `slos[].objective` (percent),
//!   `slos[].sli.events.error_query` / `total_query` (Sloth's `{{.window}}` is Guardrail's
//!   too). `sli.raw` and `sli.plugin` are refused: Guardrail needs the raw counts.
//! - OpenSLO v1: one or more YAML documents (`---`); each `kind: SLO` has `spec.service`,
//!   `spec.objectives[]` (exactly one, `target` as a ratio or `targetPercent`), an inline
//!   `spec.indicator` or an `indicatorRef` to a `kind: SLI` document of the same file, whose
//!   `spec.ratioMetric` names `bad` or `good`, and `total`, each
//!   `metricSource.spec.query` (a Prometheus source; the query must contain `{{.window}}`).
//!   With `good`, the error query is `(total) - (good)`. `timeWindow[0].duration` becomes the
//!   period.
//!
//! Not wired into `guardrail gate` yet: the gate's SLO input is still `slos.yaml` (whose
//! `prometheus:` block also needs a latency source, which neither format carries).

use std::collections::BTreeMap;

use guardrail_core::burn::Window;

use crate::common::{Diags, Format, Loaded, get, mapping, number, parse_as, required, string};
use crate::error::ConfigError;
use crate::map::SourceMap;
use crate::prometheus::WINDOW_PLACEHOLDER;
use crate::source::Source;
use crate::yaml::Node;

/// Which format an SLO definition came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SloSpecFormat {
    /// Sloth `prometheus/v1`.
    Sloth,
    /// OpenSLO v1.
    OpenSlo,
}

/// One SLO of a Sloth or OpenSLO file, in the terms of Guardrail's `prometheus:` block.
#[derive(Debug, Clone, PartialEq)]
pub struct ImportedSlo {
    /// Source format.
    pub format: SloSpecFormat,
    /// Service.
    pub service: String,
    /// SLO name.
    pub name: String,
    /// Availability objective, percent (99.9).
    pub objective_pct: f64,
    /// PromQL for failed events over `{{.window}}`.
    pub error_query: String,
    /// PromQL for all events over `{{.window}}`.
    pub total_query: String,
    /// SLO period when the file says (OpenSLO `timeWindow`).
    pub period: Option<Window>,
}

/// The format of an SLO file, when it is Sloth or OpenSLO (`None`: Guardrail's `slos.yaml`).
pub fn detect_slo_spec(src: &Source) -> Option<SloSpecFormat> {
    for line in src.text.lines().map(str::trim) {
        let unquoted = line.replace(['"', '\''], "");
        if unquoted == "version: prometheus/v1" {
            return Some(SloSpecFormat::Sloth);
        }
        if unquoted == "apiVersion: openslo/v1" {
            return Some(SloSpecFormat::OpenSlo);
        }
    }
    None
}

/// Reads every SLO of a Sloth or OpenSLO file.
pub fn load_slo_specs(src: &Source) -> Result<Loaded<Vec<ImportedSlo>>, Vec<ConfigError>> {
    match detect_slo_spec(src) {
        Some(SloSpecFormat::Sloth) => {
            let root = parse_as(src, Format::Yaml)?;
            let mut d = Diags::new(src, SourceMap::from_node(&root));
            let v = read_sloth(&mut d, &root);
            d.finish(v)
        }
        Some(SloSpecFormat::OpenSlo) => load_openslo(src),
        None => Err(vec![ConfigError::file(
            &src.path,
            "is neither a Sloth (version: prometheus/v1) nor an OpenSLO (apiVersion: openslo/v1) file",
        )]),
    }
}

/// Picks the SLO for `service` (and, when the service has several, `slo`): an error listing
/// the choices when the selection is missing or matches nothing.
pub fn select_slo<'a>(
    slos: &'a [ImportedSlo],
    service: Option<&str>,
    slo: Option<&str>,
) -> Result<&'a ImportedSlo, String> {
    let list =
        |xs: &[&ImportedSlo]| xs.iter().map(|s| format!("{}/{}", s.service, s.name)).collect::<Vec<_>>().join(", ");
    let all: Vec<&ImportedSlo> = slos.iter().collect();
    let by_service: Vec<&ImportedSlo> = match service {
        Some(svc) => all.iter().copied().filter(|s| s.service == svc).collect(),
        None => all.clone(),
    };
    if by_service.is_empty() {
        return Err(format!("has no SLO for service {:?}; it has: {}", service.unwrap_or(""), list(&all)));
    }
    let services: std::collections::BTreeSet<&str> = by_service.iter().map(|s| s.service.as_str()).collect();
    if services.len() > 1 {
        return Err(format!(
            "has SLOs for {} services, so one must be selected with --service NAME: {}",
            services.len(),
            list(&by_service)
        ));
    }
    match (slo, by_service.as_slice()) {
        (Some(name), xs) => xs
            .iter()
            .copied()
            .find(|s| s.name == name)
            .ok_or_else(|| format!("has no SLO {name:?}; it has: {}", list(xs))),
        (None, [one]) => Ok(one),
        (None, xs) => {
            Err(format!("has {} SLOs for {:?}, so one must be selected by name: {}", xs.len(), xs[0].service, list(xs)))
        }
    }
}

fn query(d: &mut Diags, path: &str, node: &Node) -> Option<String> {
    let q = string(d, path, node)?;
    if !q.contains(WINDOW_PLACEHOLDER) {
        d.error(
            path,
            format!(
                "must contain {WINDOW_PLACEHOLDER}, where Guardrail puts each window (e.g. [{WINDOW_PLACEHOLDER}])"
            ),
        );
        return None;
    }
    Some(q)
}

fn read_sloth(d: &mut Diags, root: &Node) -> Option<Vec<ImportedSlo>> {
    let top = mapping(d, "", root)?;
    let service =
        required(d, "", top, "service", "the service the SLOs are for").and_then(|n| string(d, "service", n))?;
    let slos = required(d, "", top, "slos", "the list of SLOs")?;
    let Some(items) = slos.as_seq() else {
        d.error("slos", format!("must be a list, got {}", slos.describe()));
        return None;
    };
    let mut out = Vec::new();
    for (i, item) in items.iter().enumerate() {
        let p = format!("slos[{i}]");
        let Some(m) = mapping(d, &p, item) else { continue };
        let name = required(d, &p, m, "name", "").and_then(|n| string(d, &format!("{p}.name"), n));
        let objective = required(d, &p, m, "objective", "percent, e.g. 99.9")
            .and_then(|n| number(d, &format!("{p}.objective"), n))
            .and_then(|v| {
                if v.value > 0.0 && v.value < 100.0 {
                    Some(v.value)
                } else {
                    d.error(
                        format!("{p}.objective"),
                        format!("must be a percentage between 0 and 100 (exclusive), got {v}"),
                    );
                    None
                }
            });
        let sli = required(d, &p, m, "sli", "").and_then(|n| mapping(d, &format!("{p}.sli"), n));
        let mut queries = None;
        if let Some(sli) = sli {
            let sp = format!("{p}.sli");
            if get(sli, "raw").is_some() || get(sli, "plugin").is_some() {
                d.error(&sp, "only sli.events (error_query and total_query) is supported: Guardrail needs the raw counts, not a ratio");
            } else if let Some(ev) = required(d, &sp, sli, "events", "error_query and total_query")
                .and_then(|n| mapping(d, &format!("{sp}.events"), n))
            {
                let ep = format!("{sp}.events");
                let e = required(d, &ep, ev, "error_query", "").and_then(|n| query(d, &format!("{ep}.error_query"), n));
                let t = required(d, &ep, ev, "total_query", "").and_then(|n| query(d, &format!("{ep}.total_query"), n));
                if let (Some(e), Some(t)) = (e, t) {
                    queries = Some((e, t));
                }
            }
        }
        if let (Some(name), Some(objective_pct), Some((error_query, total_query))) = (name, objective, queries) {
            out.push(ImportedSlo {
                format: SloSpecFormat::Sloth,
                service: service.clone(),
                name,
                objective_pct,
                error_query,
                total_query,
                period: None,
            });
        }
    }
    (!d.has_errors()).then_some(out)
}

/// Splits a multi-document YAML text at `---` lines, padding each document with blank lines
/// so that positions stay those of the whole file.
fn documents(src: &Source) -> Vec<Source> {
    let mut texts = Vec::new();
    let mut current = String::new();
    let mut start = 0usize;
    for (i, line) in src.text.lines().enumerate() {
        if line.trim_end() == "---" {
            if !current.trim().is_empty() {
                texts.push("\n".repeat(start) + &current);
            }
            current.clear();
            start = i + 1;
            continue;
        }
        current.push_str(line);
        current.push('\n');
    }
    if !current.trim().is_empty() {
        texts.push("\n".repeat(start) + &current);
    }
    texts.into_iter().map(|text| Source { path: src.path.clone(), text, sha256: src.sha256.clone() }).collect()
}

fn metric_query(d: &mut Diags, path: &str, m: &[(String, Node)], key: &str) -> Option<String> {
    let node = get(m, key)?;
    let p = format!("{path}.{key}");
    let mm = mapping(d, &p, node)?;
    let ms = required(d, &p, mm, "metricSource", "").and_then(|n| mapping(d, &format!("{p}.metricSource"), n))?;
    let msp = format!("{p}.metricSource");
    if let Some(t) = get(ms, "type").and_then(Node::as_str)
        && !t.eq_ignore_ascii_case("prometheus")
    {
        d.error(format!("{msp}.type"), format!("is {t:?}; Guardrail reads Prometheus metric sources only"));
        return None;
    }
    let spec = required(d, &msp, ms, "spec", "").and_then(|n| mapping(d, &format!("{msp}.spec"), n))?;
    required(d, &format!("{msp}.spec"), spec, "query", "").and_then(|n| query(d, &format!("{msp}.spec.query"), n))
}

fn load_openslo(src: &Source) -> Result<Loaded<Vec<ImportedSlo>>, Vec<ConfigError>> {
    let docs = documents(src);
    let mut errors = Vec::new();
    let mut parsed = Vec::new();
    for doc in &docs {
        match parse_as(doc, Format::Yaml) {
            Ok(root) => parsed.push((doc, root)),
            Err(e) => errors.extend(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // SLI documents by name, for indicatorRef.
    let mut slis: BTreeMap<String, usize> = BTreeMap::new();
    for (i, (_, root)) in parsed.iter().enumerate() {
        if let Some(m) = root.as_map()
            && get(m, "kind").and_then(Node::as_str) == Some("SLI")
            && let Some(name) =
                get(m, "metadata").and_then(Node::as_map).and_then(|md| get(md, "name")).and_then(Node::as_str)
        {
            slis.insert(name.to_string(), i);
        }
    }
    let mut out = Vec::new();
    let mut first_map = None;
    for (doc, root) in &parsed {
        let mut d = Diags::new(doc, SourceMap::from_node(root));
        let Some(m) = root.as_map() else { continue };
        if get(m, "kind").and_then(Node::as_str) != Some("SLO") {
            continue;
        }
        let name = get(m, "metadata")
            .and_then(Node::as_map)
            .and_then(|md| get(md, "name"))
            .and_then(Node::as_str)
            .map(str::to_string);
        let Some(name) = name else {
            d.error("metadata", "needs a name");
            errors.extend(d.finish::<()>(None).err().unwrap_or_default());
            continue;
        };
        let Some(spec) = required(&mut d, "", m, "spec", "").and_then(|n| n.as_map()) else {
            errors.extend(d.finish::<()>(None).err().unwrap_or_default());
            continue;
        };
        let service = required(&mut d, "spec", spec, "service", "").and_then(|n| string(&mut d, "spec.service", n));
        let objective = match get(spec, "objectives").and_then(Node::as_seq) {
            Some([one]) => {
                let om = one.as_map().unwrap_or(&[]);
                match (get(om, "target"), get(om, "targetPercent")) {
                    (Some(t), _) => number(&mut d, "spec.objectives[0].target", t).and_then(|v| {
                        (v.value > 0.0 && v.value < 1.0).then_some(v.value * 100.0).or_else(|| {
                            d.error(
                                "spec.objectives[0].target",
                                format!("must be a ratio between 0 and 1 (exclusive), got {v}"),
                            );
                            None
                        })
                    }),
                    (None, Some(t)) => number(&mut d, "spec.objectives[0].targetPercent", t).and_then(|v| {
                        (v.value > 0.0 && v.value < 100.0).then_some(v.value).or_else(|| {
                            d.error(
                                "spec.objectives[0].targetPercent",
                                format!("must be between 0 and 100 (exclusive), got {v}"),
                            );
                            None
                        })
                    }),
                    (None, None) => {
                        d.error("spec.objectives[0]", "needs target (a ratio such as 0.999) or targetPercent");
                        None
                    }
                }
            }
            Some(xs) => {
                d.error("spec.objectives", format!("has {} objectives; Guardrail decides on exactly one", xs.len()));
                None
            }
            None => {
                d.error("spec", "needs objectives: [{target: 0.999}]");
                None
            }
        };
        let period = match get(spec, "timeWindow")
            .and_then(Node::as_seq)
            .and_then(|w| w.first())
            .and_then(Node::as_map)
            .and_then(|w| get(w, "duration"))
        {
            Some(n) => match n.as_str().map(Window::parse) {
                Some(Ok(w)) => Some(Some(w)),
                _ => {
                    d.error(
                        "spec.timeWindow[0].duration",
                        format!("must be a duration like 28d or 720h, got {}", n.describe()),
                    );
                    None
                }
            },
            None => Some(None),
        };
        // The indicator: inline, or a reference to a kind: SLI document.
        let (ind_doc, ind_path, ind_root): (Option<&Source>, String, Option<&Node>) =
            match (get(spec, "indicator"), get(spec, "indicatorRef")) {
                (Some(n), _) => (None, "spec.indicator".to_string(), Some(n)),
                (None, Some(r)) => match r.as_str().and_then(|n| slis.get(n)) {
                    Some(&i) => (Some(parsed[i].0), String::new(), Some(&parsed[i].1)),
                    None => {
                        d.error(
                            "spec.indicatorRef",
                            format!("names no kind: SLI document of this file ({})", r.describe()),
                        );
                        (None, String::new(), None)
                    }
                },
                (None, None) => {
                    d.error("spec", "needs an indicator (or an indicatorRef to a kind: SLI document)");
                    (None, String::new(), None)
                }
            };
        let mut queries = None;
        if let Some(ind) = ind_root {
            let mut di = match ind_doc {
                Some(doc) => Diags::new(doc, SourceMap::from_node(ind)),
                None => Diags::new(doc, SourceMap::from_node(root)),
            };
            let join = |k: &str| if ind_path.is_empty() { k.to_string() } else { format!("{ind_path}.{k}") };
            let rm = ind
                .as_map()
                .and_then(|im| get(im, "spec"))
                .and_then(Node::as_map)
                .and_then(|s| get(s, "ratioMetric"))
                .and_then(Node::as_map);
            match rm {
                None => di.error(
                    join("spec"),
                    "needs ratioMetric (good or bad, and total): Guardrail reads ratio metrics over Prometheus",
                ),
                Some(rm) => {
                    let rp = join("spec.ratioMetric");
                    let total = metric_query(&mut di, &rp, rm, "total");
                    let bad = metric_query(&mut di, &rp, rm, "bad");
                    let good = metric_query(&mut di, &rp, rm, "good");
                    if total.is_none() && !di.has_errors() {
                        di.error(&rp, "needs total");
                    }
                    let error_query = match (bad, good) {
                        (Some(b), _) => Some(b),
                        (None, Some(g)) => total.as_ref().map(|t| format!("({t}) - ({g})")),
                        (None, None) => {
                            if !di.has_errors() {
                                di.error(&rp, "needs bad or good");
                            }
                            None
                        }
                    };
                    if let (Some(e), Some(t)) = (error_query, total) {
                        queries = Some((e, t));
                    }
                }
            }
            if di.has_errors() {
                errors.extend(di.finish::<()>(None).err().unwrap_or_default());
                queries = None;
            }
        }
        if let (Some(service), Some(objective_pct), Some(period), Some((error_query, total_query))) =
            (service, objective, period, queries)
            && !d.has_errors()
        {
            out.push(ImportedSlo {
                format: SloSpecFormat::OpenSlo,
                service,
                name,
                objective_pct,
                error_query,
                total_query,
                period,
            });
        }
        if d.has_errors() {
            errors.extend(d.finish::<()>(None).err().unwrap_or_default());
        } else if first_map.is_none() {
            first_map = Some(SourceMap::from_node(root));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if out.is_empty() {
        return Err(vec![ConfigError::file(&src.path, "has no kind: SLO document")]);
    }
    Ok(Loaded { value: out, map: first_map.unwrap_or_default(), file: src.path.clone(), warnings: Vec::new() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(name: &str, text: &str) -> Source {
        Source { path: name.into(), text: text.into(), sha256: String::new() }
    }

    const SLOTH: &str = r#"version: "prometheus/v1"
service: "checkout-api"
labels: {team: payments}
slos:
  - name: "requests-availability"
    objective: 99.9
    sli:
      events:
        error_query: sum(increase(http_requests_total{service="checkout-api",code=~"5.."}[{{.window}}]))
        total_query: sum(increase(http_requests_total{service="checkout-api"}[{{.window}}]))
    alerting: {name: CheckoutAvailability, page_alert: {disable: true}}
  - name: "login-availability"
    objective: 99.5
    sli:
      events:
        error_query: sum(increase(login_total{code=~"5.."}[{{.window}}]))
        total_query: sum(increase(login_total[{{.window}}]))
"#;

    const OPENSLO: &str = r#"apiVersion: openslo/v1
kind: SLI
metadata: {name: search-ratio}
spec:
  ratioMetric:
    counter: true
    good: {metricSource: {type: Prometheus, spec: {query: 'sum(increase(search_total{code!~"5.."}[{{.window}}]))'}}}
    total: {metricSource: {type: Prometheus, spec: {query: 'sum(increase(search_total[{{.window}}]))'}}}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: checkout-availability}
spec:
  service: checkout-api
  budgetingMethod: Occurrences
  timeWindow: [{duration: 28d, isRolling: true}]
  objectives: [{displayName: good, target: 0.999}]
  indicator:
    metadata: {name: checkout-errors}
    spec:
      ratioMetric:
        counter: true
        bad: {metricSource: {type: Prometheus, spec: {query: 'sum(increase(http_requests_total{code=~"5.."}[{{.window}}]))'}}}
        total: {metricSource: {type: Prometheus, spec: {query: 'sum(increase(http_requests_total[{{.window}}]))'}}}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: search-availability}
spec:
  service: search
  objectives: [{targetPercent: 99.5}]
  indicatorRef: search-ratio
"#;

    #[test]
    fn sloth_maps_objective_and_event_queries() {
        let l = load_slo_specs(&src("sloth.yaml", SLOTH)).unwrap();
        assert_eq!(l.value.len(), 2);
        let s = &l.value[0];
        assert_eq!(
            (s.format, s.service.as_str(), s.name.as_str(), s.objective_pct),
            (SloSpecFormat::Sloth, "checkout-api", "requests-availability", 99.9)
        );
        assert!(s.error_query.contains("code=~\"5..\"") && s.error_query.contains("{{.window}}"));
        // One service, two SLOs: the SLO must be named.
        let e = select_slo(&l.value, Some("checkout-api"), None).unwrap_err();
        assert!(e.contains("checkout-api/requests-availability, checkout-api/login-availability"), "{e}");
        assert_eq!(select_slo(&l.value, None, Some("login-availability")).unwrap().objective_pct, 99.5);
    }

    #[test]
    fn openslo_bad_good_total_and_several_services() {
        let l = load_slo_specs(&src("openslo.yaml", OPENSLO)).unwrap();
        assert_eq!(l.value.len(), 2);
        let c = select_slo(&l.value, Some("checkout-api"), None).unwrap();
        assert_eq!(c.objective_pct, 99.9);
        assert_eq!(c.period, Some(Window(28 * 86_400)));
        assert!(c.error_query.starts_with("sum(increase(http_requests_total{code=~"));
        // good/total: error = total − good.
        let s = select_slo(&l.value, Some("search"), None).unwrap();
        assert_eq!(
            s.error_query,
            "(sum(increase(search_total[{{.window}}]))) - (sum(increase(search_total{code!~\"5..\"}[{{.window}}])))"
        );
        assert_eq!(s.objective_pct, 99.5);
        let e = select_slo(&l.value, None, None).unwrap_err();
        assert!(e.contains("2 services") && e.contains("--service") && e.contains("search/search-availability"), "{e}");
        let e = select_slo(&l.value, Some("payments"), None).unwrap_err();
        assert!(e.contains("no SLO for service \"payments\""), "{e}");
    }

    #[test]
    fn errors_name_the_field_and_line() {
        let bad = SLOTH.replace("objective: 99.9", "objective: 999");
        let e = load_slo_specs(&src("sloth.yaml", &bad)).unwrap_err();
        assert_eq!(e[0].field, "slos[0].objective");
        assert_eq!(e[0].line, Some(6));
        let bad = SLOTH.replace(
            "total_query: sum(increase(login_total[{{.window}}]))",
            "total_query: sum(increase(login_total[5m]))",
        );
        let e = load_slo_specs(&src("sloth.yaml", &bad)).unwrap_err();
        assert_eq!(e[0].field, "slos[1].sli.events.total_query");
        assert!(e[0].message.contains("{{.window}}"));
        // Positions in the third document of an OpenSLO file are the file's lines.
        let bad = OPENSLO.replace("targetPercent: 99.5", "targetPercent: 150");
        let e = load_slo_specs(&src("openslo.yaml", &bad)).unwrap_err();
        assert_eq!(e[0].field, "spec.objectives[0].targetPercent");
        assert_eq!(e[0].line, Some(31));
        let bad = OPENSLO.replace(
            "type: Prometheus, spec: {query: 'sum(increase(http_requests_total{",
            "type: Datadog, spec: {query: 'sum(increase(http_requests_total{",
        );
        let e = load_slo_specs(&src("openslo.yaml", &bad)).unwrap_err();
        assert!(e[0].field.ends_with("bad.metricSource.type"), "{:?}", e[0]);
        let bad = OPENSLO.replace("indicatorRef: search-ratio", "indicatorRef: nope");
        let e = load_slo_specs(&src("openslo.yaml", &bad)).unwrap_err();
        assert_eq!(e[0].field, "spec.indicatorRef");
    }

    #[test]
    fn detection() {
        assert_eq!(detect_slo_spec(&src("a", SLOTH)), Some(SloSpecFormat::Sloth));
        assert_eq!(detect_slo_spec(&src("a", OPENSLO)), Some(SloSpecFormat::OpenSlo));
        assert_eq!(detect_slo_spec(&src("a", "slos:\n  availability: {target: 99.9}\n")), None);
    }
}
