//! `--planner` through the real binary: `incident run` planned by OpenAI, Anthropic and Kibana
//! Agent Builder against loopback servers speaking their wire formats, the planner transcript on
//! the chain and in `incident show`, the selection order (flag → GUARDRAIL_PLANNER → the config's
//! `planner:` block → builtin), and every fail-closed path with its exit code.

use crate::common;

use std::path::PathBuf;

use assert_cmd::Command;
use guardrail_test_support::model::{Call, Reply, anthropic, openai, serve, serve_with};
use serde_json::{Value, json};

/// A key that must never reach a record, a message or the terminal.
const KEY: &str = "sk-cli-SECRET-0123456789";

fn examples() -> PathBuf {
    guardrail_test_support::examples("governor")
}

/// inc-live-002 (billing-batch, medium): the knowledge base offers scale_worker_pool.
fn scenario() -> String {
    examples().join("scenarios").join("incident_medium.json").display().to_string()
}

/// The model's final plan for inc-live-002.
fn plan_json(action: &str) -> String {
    json!({
        "incident_id": "inc-live-002",
        "proposed_action": action,
        "rationale": "Runbook rbk-batch-01 matches the queue lag.",
        "key_claims": ["slow workers without DB saturation call for more workers"],
        "confidence_initial": 9.5,
        "retrieved_context_ids": ["rbk-batch-01"],
        "approved_by": "the CTO"
    })
    .to_string()
}

/// A working directory with the sample knowledge base and the bundled governor config.
struct Dir {
    dir: tempfile::TempDir,
}

impl Dir {
    fn loaded() -> Dir {
        let d = Dir { dir: tempfile::tempdir().unwrap() };
        common::write_test_tokens(d.dir.path());
        let (code, out, err) = d.run(&["kb", "load", &examples().join("sample_data.json").display().to_string()], &[]);
        assert_eq!(code, 0, "{out}{err}");
        std::fs::create_dir_all(d.dir.path().join(".guardrail")).unwrap();
        std::fs::copy(examples().join("governor.yaml"), d.dir.path().join(".guardrail/governor.yaml")).unwrap();
        d
    }

    /// The binary in this directory, with the test tokens and no model variables but `env`.
    fn cmd(&self, args: &[&str], env: &[(&str, &str)]) -> Command {
        let mut c = common::guardrail();
        for k in [
            "GUARDRAIL_KB",
            "GUARDRAIL_GOVERNOR_CONFIG",
            "GUARDRAIL_PLANNER",
            "GUARDRAIL_MODEL",
            "OPENAI_API_KEY",
            "OPENAI_BASE_URL",
            "OPENAI_MODEL",
            "ANTHROPIC_API_KEY",
            "ANTHROPIC_BASE_URL",
            "ANTHROPIC_MODEL",
            "ELASTIC_URL",
            "ELASTIC_KIBANA_URL",
            "ELASTIC_API_KEY",
            "ELASTIC_AGENT_ID",
            "HTTPS_PROXY",
            "HTTP_PROXY",
            "ALL_PROXY",
        ] {
            c.env_remove(k);
        }
        c.env("NO_PROXY", "127.0.0.1,localhost");
        c.current_dir(self.dir.path()).env("GUARDRAIL_TOKENS", self.dir.path().join("tokens.yaml"));
        c.args(common::as_token(args));
        for (k, v) in env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        common::run(self.cmd(args, env))
    }

    /// `incident run` of the scenario as dave, JSON.
    fn incident(&self, extra: &[&str], env: &[(&str, &str)]) -> (i32, Value, String) {
        let s = scenario();
        let mut args = vec!["incident", "run", &s, "--as", "dave", "--now", "2026-11-24T10:00:00Z", "--format", "json"];
        args.extend_from_slice(extra);
        let (code, out, err) = self.run(&args, env);
        let v = serde_json::from_str(&out).unwrap_or(Value::Null);
        (code, v, format!("{out}{err}"))
    }

    fn records(&self) -> Vec<Value> {
        let (code, out, err) = self.run(&["audit", "list", "--limit", "1000", "--format", "json"], &[]);
        assert_eq!(code, 0, "{err}");
        let mut v: Vec<Value> = serde_json::from_str(&out).unwrap();
        v.reverse();
        v
    }

    fn kinds(&self) -> Vec<String> {
        self.records().iter().map(|r| r["kind"].as_str().unwrap_or_default().to_string()).collect()
    }

    fn write_config(&self, planner_block: &str) {
        let base = std::fs::read_to_string(examples().join("governor.yaml")).unwrap();
        std::fs::write(self.dir.path().join(".guardrail/governor.yaml"), format!("{base}\n{planner_block}")).unwrap();
    }
}

/// The whole trail as text (to check that no key reached it).
fn trail_text(d: &Dir) -> String {
    serde_json::to_string(&d.records()).unwrap()
}

fn assert_executed_by(v: &Value, planner: &str, out: &str) {
    let r = &v["results"][0];
    assert_eq!(r["decision"], "execute", "{out}");
    assert_eq!(r["execution"]["action"], "scale_worker_pool", "{out}");
    assert_eq!(v["exit_code"], 0, "{out}");
    assert_eq!(r["plan"]["planner"], planner, "{out}");
}

#[test]
fn openai_plans_through_tool_calls_end_to_end() {
    let d = Dir::loaded();
    let srv = serve(vec![
        openai::tool_calls(&[Call::new(
            "call_1",
            "search_runbooks",
            r#"{"query": "queue lag slow workers", "service": "billing-batch", "top_k": 3}"#,
        )]),
        openai::text(&plan_json("scale_worker_pool")),
    ]);
    let base = format!("{}/v1", srv.url);
    let env = [("OPENAI_API_KEY", KEY), ("OPENAI_BASE_URL", base.as_str())];
    let (code, v, out) = d.incident(&["--planner", "openai", "--model", "gpt-4o-mini"], &env);
    assert_eq!(code, 0, "{out}");
    assert_executed_by(&v, "openai", &out);

    // Two model calls: the tool round, then the plan; the key only in the Authorization header.
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2, "{reqs:?}");
    assert!(reqs[0].head.starts_with("POST /v1/chat/completions "), "{}", reqs[0].head);
    assert!(reqs[0].head.to_lowercase().contains(&format!("authorization: bearer {}", KEY.to_lowercase())));
    let first: Value = serde_json::from_str(&reqs[0].body).unwrap();
    assert_eq!(first["model"], "gpt-4o-mini");
    let tools: Vec<&str> =
        first["tools"].as_array().unwrap().iter().filter_map(|t| t["function"]["name"].as_str()).collect();
    assert!(
        tools.contains(&"search_runbooks") && !tools.iter().any(|t| t.contains("execute") || t.contains("approve")),
        "{tools:?}"
    );
    let second: Value = serde_json::from_str(&reqs[1].body).unwrap();
    assert!(second["messages"].as_array().unwrap().iter().any(|m| m["role"] == "tool"), "{second:#}");

    // The transcript is on the chain before the decision, which names it; no key anywhere.
    let kinds = d.kinds();
    let t = kinds.iter().position(|k| k == "planner_transcript").expect("transcript record");
    let dec = kinds.iter().position(|k| k == "remediation_decision").expect("decision record");
    assert!(t < dec, "{kinds:?}");
    assert!(!trail_text(&d).contains(KEY));

    // incident show prints it: planner, outcome, the tool call, the reported (ignored) fields.
    let (code, show, err) = d.run(&["incident", "show", "inc-live-002"], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(show.contains("planner          openai gpt-4o-2024-08-06 (accepted)"), "{show}");
    assert!(show.contains("model          gpt-4o-mini asked via openai"), "{show}");
    assert!(show.contains("search_runbooks"), "{show}");
    assert!(show.contains("ignored fields: approved_by"), "{show}");
    assert!(show.contains("outcome        accepted"), "{show}");
    let (code, show, _) = d.run(&["incident", "show", "inc-live-002", "--format", "json"], &[]);
    assert_eq!(code, 0);
    let detail: Value = serde_json::from_str(&show).unwrap();
    assert_eq!(detail["planner_transcript"]["planner"], "openai");
    assert_eq!(detail["transcript"]["outcome"], "accepted");
    assert_eq!(detail["transcript"]["reported"]["confidence_initial"], 9.5);

    // replay re-runs the gate on the recorded plan without the model (the server is not called).
    let rec = d.records().into_iter().find(|r| r["kind"] == "remediation_decision").unwrap();
    let seq = rec["seq"].as_i64().unwrap().to_string();
    let before = srv.hits();
    let (code, out, err) = d.run(&["replay", &seq, "--format", "json"], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let replay: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((replay["identical"].as_bool(), replay["replayed_decision"].as_str()), (Some(true), Some("execute")));
    assert_eq!(srv.hits(), before);
}

#[test]
fn anthropic_plans_through_tool_use_end_to_end() {
    let d = Dir::loaded();
    let srv = serve(vec![
        anthropic::tool_use(&[Call::new(
            "toolu_1",
            "search_evidence",
            r#"{"query": "queue lag", "service": "billing-batch", "top_k": 3}"#,
        )]),
        anthropic::text(&plan_json("scale worker pool")),
    ]);
    let env =
        [("ANTHROPIC_API_KEY", KEY), ("ANTHROPIC_BASE_URL", srv.url.as_str()), ("GUARDRAIL_PLANNER", "anthropic")];
    let (code, v, out) = d.incident(&[], &env);
    assert_eq!(code, 0, "{out}");
    assert_executed_by(&v, "anthropic", &out);
    let reqs = srv.requests();
    assert!(reqs[0].head.starts_with("POST /v1/messages "), "{}", reqs[0].head);
    assert!(reqs[0].head.to_lowercase().contains("anthropic-version: 2023-06-01"));
    assert!(!trail_text(&d).contains(KEY));
    let (_, show, _) = d.run(&["incident", "show", "inc-live-002"], &[]);
    assert!(show.contains("planner          anthropic"), "{show}");
}

/// A Kibana converse round as the API documents it.
fn converse_round(message: &str) -> String {
    json!({
        "conversation_id": "0c6f2a51-8d3e-4c1a-9a43-2f5b0e6d7c11",
        "round_id": "r-1",
        "status": "completed",
        "steps": [
            {"type": "reasoning", "reasoning": "Looking up runbooks for billing-batch."},
            {"type": "tool_call", "tool_call_id": "tc-1", "tool_id": "guardrail.search_runbooks",
             "params": {"query": "queue lag", "service": "billing-batch"},
             "results": [{"tool_result_id": "res-1", "type": "other", "data": {"hits": [{"id": "rbk-batch-01"}]}}]}
        ],
        "response": {"message": message},
        "started_at": "2026-11-24T10:00:00.000Z",
        "time_to_first_token": 300,
        "time_to_last_token": 900,
        "model_usage": {"connector_id": "gpt-connector", "llm_calls": 2, "input_tokens": 3000, "output_tokens": 120, "model": "gpt-4.1"}
    })
    .to_string()
}

#[test]
fn agent_builder_plans_through_the_converse_api_end_to_end() {
    let d = Dir::loaded();
    let round = converse_round(&plan_json("scale_worker_pool"));
    let srv = serve(vec![Reply::json(200, round)]);
    let env =
        [("ELASTIC_KIBANA_URL", srv.url.as_str()), ("ELASTIC_API_KEY", KEY), ("ELASTIC_AGENT_ID", "guardrail-sre")];
    let (code, v, out) = d.incident(&["--planner", "agent-builder"], &env);
    assert_eq!(code, 0, "{out}");
    assert_executed_by(&v, "agent-builder", &out);
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 1);
    assert!(reqs[0].head.starts_with("POST /api/agent_builder/converse "), "{}", reqs[0].head);
    let head = reqs[0].head.to_lowercase();
    assert!(head.contains(&format!("authorization: apikey {}", KEY.to_lowercase())), "{head}");
    assert!(head.contains("kbn-xsrf: true"), "{head}");
    let body: Value = serde_json::from_str(&reqs[0].body).unwrap();
    assert_eq!(body["agent_id"], "guardrail-sre");
    // The incident goes as delimited data, with the offered actions.
    let input = body["input"].as_str().unwrap();
    assert!(input.contains("<incident_data>") && input.contains("inc-live-002") && input.contains("scale_worker_pool"));
    assert!(!trail_text(&d).contains(KEY));
    let (_, show, _) = d.run(&["incident", "show", "inc-live-002"], &[]);
    assert!(show.contains("planner          agent-builder gpt-4.1 (accepted)"), "{show}");
    assert!(show.contains("model          guardrail-sre asked via kibana, answered by gpt-4.1"), "{show}");
    assert!(show.contains("guardrail.search_runbooks"), "{show}");
    assert!(show.contains("3000 in / 120 out tokens"), "{show}");
}

#[test]
fn an_unreachable_kibana_blocks_and_escalates_naming_why() {
    let d = Dir::loaded();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let env = [("ELASTIC_KIBANA_URL", url.as_str()), ("ELASTIC_API_KEY", KEY)];
    let (code, v, out) = d.incident(&["--planner", "agent-builder"], &env);
    assert_eq!(code, 10, "{out}");
    let r = &v["results"][0];
    assert_eq!(r["decision"], "block_and_escalate", "{out}");
    assert_eq!(r["rule"], "planner_failed", "{out}");
    assert!(out.contains("could not reach"), "{out}");
    // Nothing ran: the queue has it, no execution record.
    assert!(!d.kinds().iter().any(|k| k == "remediation_execution"), "{:?}", d.kinds());
    assert!(!trail_text(&d).contains(KEY));
}

#[test]
fn a_model_that_proposes_a_command_is_blocked_and_never_executed() {
    let d = Dir::loaded();
    let srv = serve(vec![openai::text(&plan_json("kubectl delete namespace billing"))]);
    let base = format!("{}/v1", srv.url);
    let env = [("OPENAI_API_KEY", KEY), ("OPENAI_BASE_URL", base.as_str())];
    let (code, v, out) = d.incident(&["--planner", "openai"], &env);
    assert_eq!(code, 10, "{out}");
    assert_eq!(v["results"][0]["rule"], "planner_failed", "{out}");
    assert!(!d.kinds().iter().any(|k| k == "remediation_execution"));
}

#[test]
fn the_config_block_chooses_and_its_fallback_plans_with_the_builtin_planner() {
    let d = Dir::loaded();
    // Broken JSON from the model; the block says fallback: builtin.
    let srv = serve_with(|_, _| openai::text("{not json"));
    let base = format!("{}/v1", srv.url);
    d.write_config(&format!(
        "planner:\n  backend: openai\n  model: from-config\n  base_url: {base}\n  budget:\n    rounds: 2\n    timeout_seconds: 20\n  fallback: builtin\n"
    ));
    let (code, v, out) = d.incident(&[], &[("OPENAI_API_KEY", KEY)]);
    assert_eq!(code, 0, "{out}");
    assert_executed_by(&v, "openai+builtin-fallback", &out);
    let first: Value = serde_json::from_str(&srv.requests()[0].body).unwrap();
    assert_eq!(first["model"], "from-config");
    let (_, show, _) = d.run(&["incident", "show", "inc-live-002"], &[]);
    assert!(show.contains("(fallback)"), "{show}");
    assert!(show.contains("outcome        fallback: the final answer is not a JSON object"), "{show}");
}

#[test]
fn selection_failures_stop_before_anything_is_recorded() {
    let d = Dir::loaded();
    let before = d.records().len();
    // Unknown names: usage errors.
    let (code, _, out) = d.incident(&["--planner", "gpt"], &[]);
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("--planner \"gpt\" is not a planner (builtin, openai, anthropic, agent-builder)"), "{out}");
    let (code, _, out) = d.incident(&[], &[("GUARDRAIL_PLANNER", "llama")]);
    assert_eq!(code, 64, "{out}");
    assert!(out.contains("GUARDRAIL_PLANNER \"llama\" is not a planner"), "{out}");
    let (code, _, out) = d.incident(&["--model", "gpt-4o"], &[]);
    assert_eq!(code, 64, "{out}");
    // incident execute chooses the same way (its re-gate plans the requested action).
    let (code, out, err) = d.run(&["incident", "execute", "inc-live-002", "--as", "dave", "--planner", "gpt"], &[]);
    assert_eq!(code, 64, "{out}{err}");
    // A model planner without its key or Kibana: could not decide.
    let (code, _, out) = d.incident(&["--planner", "openai"], &[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("planner openai (chosen by --planner): openai: no API key: set OPENAI_API_KEY"), "{out}");
    let (code, _, out) = d.incident(&["--planner", "agent-builder"], &[("ELASTIC_API_KEY", KEY)]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("ELASTIC_KIBANA_URL is not set"), "{out}");
    d.write_config("planner:\n  backend: anthropic\n");
    let (code, _, out) = d.incident(&[], &[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("chosen by the governor config's planner.backend"), "{out}");
    // A bad block is a config error at its line.
    d.write_config("planner:\n  backend: gpt\n");
    let (code, _, out) = d.incident(&[], &[]);
    assert_eq!(code, 3, "{out}");
    assert!(out.contains("planner.backend: \"gpt\" is not a planner"), "{out}");
    assert_eq!(d.records().len(), before);
    assert!(!out.contains(KEY));
}

#[test]
fn without_a_choice_the_builtin_planner_plans_and_no_transcript_is_recorded() {
    let d = Dir::loaded();
    let (code, v, out) = d.incident(&[], &[("GUARDRAIL_MODEL", "ignored-without-a-planner")]);
    assert_eq!(code, 0, "{out}");
    assert_executed_by(&v, "builtin", &out);
    assert!(!d.kinds().iter().any(|k| k == "planner_transcript"), "{:?}", d.kinds());
    let (_, show, _) = d.run(&["incident", "show", "inc-live-002"], &[]);
    assert!(!show.contains("transcript"), "{show}");
    // incident execute does not set up the block's model planner (it plans nothing with a
    // model): a block without its key does not stand in its way — here it is refused only
    // because the action already ran (11), not for the key (3).
    d.write_config("planner:\n  backend: anthropic\n");
    let (code, out, err) = d.run(&["incident", "execute", "inc-live-002", "--as", "dave"], &[]);
    assert_eq!(code, 11, "{out}{err}");
    assert!(!err.contains("ANTHROPIC_API_KEY"), "{err}");
}

/// `guardrail mcp --planner openai`: `propose_remediation` plans with the model (and records
/// nothing), over rmcp's client driving the binary on stdio.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_propose_remediation_plans_with_the_chosen_planner() {
    use rmcp::ServiceExt;
    use rmcp::model::CallToolRequestParams;
    use rmcp::transport::TokioChildProcess;

    let d = Dir::loaded();
    let srv = serve(vec![
        openai::tool_calls(&[Call::new("c1", "search_runbooks", r#"{"query":"queue lag","service":"billing-batch"}"#)]),
        openai::text(&plan_json("scale_worker_pool")),
    ]);
    let base = format!("{}/v1", srv.url);
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_guardrail"));
    for k in ["GUARDRAIL_STORE", "GUARDRAIL_KB", "GUARDRAIL_GOVERNOR_CONFIG", "GUARDRAIL_PLANNER", "GUARDRAIL_MODEL"] {
        cmd.env_remove(k);
    }
    cmd.current_dir(d.dir.path())
        .args(["mcp", "--planner", "openai", "--now", "2026-11-24T10:00:00Z"])
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", &base)
        .env("NO_PROXY", "127.0.0.1,localhost");
    let client = ().serve(TokioChildProcess::new(cmd).unwrap()).await.expect("initialize over stdio");
    let incident: Value = serde_json::from_str(&std::fs::read_to_string(scenario()).unwrap()).unwrap();
    let args = json!({"incident": incident, "deploy_signals": false});
    let r = client
        .call_tool(CallToolRequestParams::new("propose_remediation").with_arguments(args.as_object().cloned().unwrap()))
        .await
        .unwrap();
    let p = r.structured_content.clone().unwrap_or(Value::Null);
    assert_eq!(p["decision"], "execute", "{p}");
    assert_eq!(p["plan"]["planner"], "openai", "{p}");
    assert_eq!(p["recorded"], false, "{p}");
    assert_eq!(srv.hits(), 2);
    let _ = client.cancel().await;
}

#[test]
fn serve_refuses_a_planner_it_cannot_use_before_listening() {
    let s = common::Scratch::new();
    let serve = |extra: &[&str], env: &[(&str, &str)]| {
        let mut c = common::guardrail();
        for k in
            ["GUARDRAIL_PLANNER", "GUARDRAIL_MODEL", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "GUARDRAIL_GOVERNOR_CONFIG"]
        {
            c.env_remove(k);
        }
        c.current_dir(s.root()).arg("serve").arg("--root").arg(s.root()).args(["--bind", "127.0.0.1:0"]).args(extra);
        for (k, v) in env {
            c.env(k, v);
        }
        common::run(c)
    };
    let (code, _, err) = serve(&["--planner", "gpt"], &[]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("--planner \"gpt\" is not a planner"), "{err}");
    let (code, _, err) = serve(&[], &[("GUARDRAIL_PLANNER", "anthropic")]);
    assert_eq!(code, 3, "{err}");
    assert!(
        err.contains("planner anthropic (chosen by GUARDRAIL_PLANNER): anthropic: no API key: set ANTHROPIC_API_KEY"),
        "{err}"
    );
}

/// `serve --explainer openai --planner anthropic`: the flags reach /api/explain (a labelled model
/// narrative from the loopback model) and the start-up line names the planner.
#[test]
fn serve_takes_its_explainer_and_planner_from_flags() {
    use std::io::{BufRead, BufReader, Read, Write};

    let s = common::Scratch::new();
    let narrator = serve(vec![openai::text("Deploys are delayed: the error budget burns fast.")]);
    let claude = serve(vec![anthropic::text("unused")]);
    let base = format!("{}/v1", narrator.url);
    let mut child = std::process::Command::new(assert_cmd::cargo::cargo_bin("guardrail"))
        .current_dir(s.root())
        .arg("serve")
        .arg("--root")
        .arg(s.root())
        .arg("--store")
        .arg(s.store())
        .args(["--now", "2026-02-21T00:00:00Z", "--bind", "127.0.0.1:0"])
        .args(["--explainer", "openai", "--planner", "anthropic"])
        .env_remove("GUARDRAIL_TOKENS")
        .env_remove("EXPLAINER_BACKEND")
        .env_remove("GUARDRAIL_PLANNER")
        .env_remove("GUARDRAIL_GOVERNOR_CONFIG")
        .env("OPENAI_API_KEY", KEY)
        .env("OPENAI_BASE_URL", &base)
        .env("ANTHROPIC_API_KEY", KEY)
        .env("ANTHROPIC_BASE_URL", &claude.url)
        .env("NO_PROXY", "127.0.0.1,localhost")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    let addr = loop {
        let mut line = String::new();
        if err.read_line(&mut line).unwrap_or(0) == 0 {
            let _ = child.kill();
            panic!("serve ended before listening: {seen}");
        }
        seen.push_str(&line);
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split('/').next().unwrap_or_default().trim().to_string();
        }
    };
    assert!(seen.contains("guardrail serve: planner: anthropic"), "{seen}");
    let mut conn = std::net::TcpStream::connect(&addr).unwrap();
    conn.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    write!(conn, "GET /api/explain HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    conn.read_to_string(&mut answer).unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(answer.contains("Deploys are delayed: the error budget burns fast."), "{answer}");
    assert!(answer.contains("\"written_by\":\"openai/"), "{answer}");
    assert!(!answer.contains(KEY));
    assert_eq!(narrator.hits(), 1);
}

#[test]
fn an_agent_round_over_its_budget_is_refused_and_blocked() {
    let d = Dir::loaded();
    let round = |llm_calls: u64, input_tokens: u64| {
        let mut r: Value = serde_json::from_str(&converse_round(&plan_json("scale_worker_pool"))).unwrap();
        r["model_usage"]["llm_calls"] = json!(llm_calls);
        r["model_usage"]["input_tokens"] = json!(input_tokens);
        Reply::json(200, r.to_string())
    };
    // 9 LLM calls = 8 tool rounds, over the block's 3.
    let srv = serve(vec![round(9, 100), round(2, 50_000)]);
    d.write_config(
        "planner:\n  backend: agent-builder\n  agent_id: guardrail-sre\n  budget:\n    rounds: 3\n    tokens: 20000\n",
    );
    let env = [("ELASTIC_KIBANA_URL", srv.url.as_str()), ("ELASTIC_API_KEY", KEY)];
    let (code, v, out) = d.incident(&[], &env);
    assert_eq!(code, 10, "{out}");
    assert_eq!(v["results"][0]["rule"], "planner_failed", "{out}");
    assert!(out.contains("the tool_rounds budget is exhausted (8 rounds, at most 3)"), "{out}");
    // 50,000 + 120 tokens, over the block's 20,000.
    let (code, v, out) = d.incident(&[], &env);
    assert_eq!(code, 10, "{out}");
    assert_eq!(v["results"][0]["rule"], "planner_failed", "{out}");
    assert!(out.contains("the tokens budget is exhausted (50120 tokens, at most 20000)"), "{out}");
    assert!(!d.kinds().iter().any(|k| k == "remediation_execution"), "{:?}", d.kinds());
    let body: Value = serde_json::from_str(&srv.requests()[0].body).unwrap();
    assert_eq!(body["agent_id"], "guardrail-sre");

    // Five tool calls over the block's two; then a 100 kB answer (the model loop's answer cap).
    let mut many: Value = serde_json::from_str(&converse_round(&plan_json("scale_worker_pool"))).unwrap();
    let step = many["steps"][1].clone();
    many["steps"] = json!([step.clone(), step.clone(), step.clone(), step.clone(), step]);
    many["model_usage"]["llm_calls"] = json!(2);
    let huge = converse_round(&format!("{} {}", plan_json("scale_worker_pool"), "x".repeat(100_000)));
    let srv = serve(vec![Reply::json(200, many.to_string()), Reply::json(200, huge)]);
    d.write_config("planner:\n  backend: agent-builder\n  budget:\n    tool_calls: 2\n");
    let env = [("ELASTIC_KIBANA_URL", srv.url.as_str()), ("ELASTIC_API_KEY", KEY)];
    let (code, _, out) = d.incident(&[], &env);
    assert_eq!(code, 10, "{out}");
    assert!(out.contains("the tool_calls budget is exhausted (5 tool calls, at most 2)"), "{out}");
    let (code, _, out) = d.incident(&[], &env);
    assert_eq!(code, 10, "{out}");
    assert!(out.contains("the answer_size budget is exhausted"), "{out}");
    assert!(!d.kinds().iter().any(|k| k == "remediation_execution"), "{:?}", d.kinds());
}
