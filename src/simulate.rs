//! `callhook simulate`: realistic call flows posted as call events, to see callhook work
//! without a telephone switch. The flows are random but reproducible (`--seed`); `--speed`
//! compresses their real-looking timings.
//!
//! The plan of each call (what happens, and when) is pure and seeded ([`plan_call`]); the
//! runner posts each event at its time, with `occurred_at` the moment it is sent.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use jiff::Timestamp;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

/// What the simulator is told.
#[derive(Debug, Clone)]
pub struct Options {
    pub server: String,
    pub api_key: String,
    pub calls: u32,
    /// New calls per second.
    pub rate: f64,
    /// How much faster than real time the calls run (60: a minute of call per second).
    pub speed: f64,
    pub seed: u64,
    /// Print no progress line (for scripts).
    pub quiet: bool,
}

/// The shape of a call, which decides the triggers it exercises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Flow {
    /// IVR, a DTMF option, then a ring group or queue that answers or not.
    IvrMenu,
    /// Straight to an extension, answered or missed.
    DirectExtension,
    /// An agent calls a customer.
    Outbound,
    /// The platform calls the agent, then the customer; the customer answers or not.
    ClickToCall,
}

impl Flow {
    fn name(self) -> &'static str {
        match self {
            Flow::IvrMenu => "inbound via IVR",
            Flow::DirectExtension => "inbound to an extension",
            Flow::Outbound => "outbound",
            Flow::ClickToCall => "click-to-call",
        }
    }
}

/// One event of a planned call: when (seconds of call time after it starts) and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub at: f64,
    /// The event without `occurred_at` and `call.started_at`, filled in when sent.
    pub event: Value,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlannedCall {
    pub flow: Flow,
    pub answered: bool,
    pub steps: Vec<Step>,
}

const AGENTS: &[(&str, &str)] = &[
    ("101", "Asha"),
    ("102", "Ravi"),
    ("103", "Meera"),
    ("104", "Arjun"),
    ("105", "Divya"),
    ("106", "Kiran"),
];
const HANGUP_CAUSES: &[&str] = &[
    "NORMAL_CLEARING",
    "NORMAL_CLEARING",
    "ORIGINATOR_CANCEL",
    "NO_ANSWER",
    "USER_BUSY",
];

fn customer(rng: &mut StdRng) -> String {
    format!("+9198{:08}", rng.random_range(0..100_000_000u32))
}

fn pick<'a, T>(rng: &mut StdRng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// Plans one call: its flow, outcome and events with their offsets (pure and seeded).
pub fn plan_call(rng: &mut StdRng, call_id: &str, did: &str, event_prefix: &str) -> PlannedCall {
    let flow = match rng.random_range(0..100) {
        0..55 => Flow::IvrMenu,
        55..75 => Flow::DirectExtension,
        75..90 => Flow::Outbound,
        _ => Flow::ClickToCall,
    };
    let call_type = match flow {
        Flow::IvrMenu | Flow::DirectExtension => "inbound",
        Flow::Outbound => "outbound",
        Flow::ClickToCall => "click_to_call",
    };
    let call = json!({"call_id": call_id, "call_type": call_type, "did_number": did, "customer_number": customer(rng)});
    let mut steps = Vec::new();
    let mut k = 0;
    let mut push = |steps: &mut Vec<Step>, at: f64, mut event: Value| {
        event["id"] = json!(format!("{event_prefix}-{k}"));
        event["call"] = call.clone();
        k += 1;
        steps.push(Step { at, event });
    };
    push(&mut steps, 0.0, json!({"type": "call.received"}));
    let mut t = 0.0;
    let mut answered_at = None;
    let mut answered_ext: Option<(&str, &str)> = None;
    let mut missed: Vec<String> = Vec::new();
    let last_stage;
    match flow {
        Flow::IvrMenu => {
            t += rng.random_range(0.5..2.0);
            push(
                &mut steps,
                t,
                json!({"type": "call.answered", "answered_by": {"type": "ivr", "id": "ivr_main", "name": "Main menu"}}),
            );
            let mut digits = String::new();
            for _ in 0..rng.random_range(1..=2) {
                t += rng.random_range(3.0..12.0);
                let d = rng.random_range(1..=3).to_string();
                digits.push_str(&d);
                push(
                    &mut steps,
                    t,
                    json!({"type": "call.dtmf", "dtmf": {"digit": d, "digits": digits, "ivr_id": "ivr_main", "ivr_name": "Main menu"}}),
                );
            }
            let (via, id, name) = if rng.random_bool(0.5) {
                ("ring_group", "rg_sales", "Sales")
            } else {
                ("queue", "q_support", "Support")
            };
            let group: Vec<(&str, &str)> = (0..rng.random_range(2..=4))
                .map(|_| *pick(rng, AGENTS))
                .collect();
            let mut exts: Vec<&str> = group.iter().map(|a| a.0).collect();
            exts.sort();
            exts.dedup();
            t += 0.5;
            push(
                &mut steps,
                t,
                json!({"type": "call.dialed", "dialed": {"via": via, "id": id, "name": name, "extensions": exts}}),
            );
            let ring = rng.random_range(3.0..25.0_f64);
            if rng.random_bool(0.75) {
                let agent = *pick(rng, &group);
                t += ring;
                let hold = (via == "queue").then(|| rng.random_range(0..60));
                push(
                    &mut steps,
                    t,
                    json!({"type": "call.answered", "answered_by": {
                    "type": via, "id": id, "name": name, "extension": agent.0, "extension_name": agent.1,
                    "ring_time": ring.round() as i64, "hold_time": hold}}),
                );
                answered_at = Some(t);
                answered_ext = Some(agent);
                missed = exts
                    .iter()
                    .filter(|e| **e != agent.0)
                    .map(|e| e.to_string())
                    .collect();
                last_stage = "extension";
            } else {
                t += ring.max(20.0);
                missed = exts.iter().map(|e| e.to_string()).collect();
                last_stage = via;
            }
        }
        Flow::DirectExtension => {
            let agent = *pick(rng, AGENTS);
            t += 0.3;
            push(
                &mut steps,
                t,
                json!({"type": "call.dialed", "dialed": {"via": "direct", "extensions": [agent.0]}}),
            );
            let ring = rng.random_range(2.0..20.0_f64);
            t += ring;
            if rng.random_bool(0.7) {
                push(
                    &mut steps,
                    t,
                    json!({"type": "call.answered", "answered_by": {
                    "type": "extension", "id": format!("ext_{}", agent.0), "name": agent.1,
                    "extension": agent.0, "extension_name": agent.1, "ring_time": ring.round() as i64}}),
                );
                answered_at = Some(t);
                answered_ext = Some(agent);
                last_stage = "extension";
            } else {
                missed = vec![agent.0.to_owned()];
                last_stage = "extension";
            }
        }
        Flow::Outbound => {
            let agent = *pick(rng, AGENTS);
            t += rng.random_range(4.0..25.0);
            if rng.random_bool(0.65) {
                answered_at = Some(t);
                answered_ext = Some(agent);
            } else {
                missed = vec![agent.0.to_owned()];
            }
            last_stage = "extension";
        }
        Flow::ClickToCall => {
            let agent = *pick(rng, AGENTS);
            let ref_id = format!("c2c_{}", rng.random_range(1000..9999));
            t += rng.random_range(2.0..8.0);
            push(
                &mut steps,
                t,
                json!({"type": "call.answered", "answered_by": {
                "type": "extension", "extension": agent.0, "extension_name": agent.1, "ref_id": ref_id}}),
            );
            t += rng.random_range(4.0..20.0);
            if rng.random_bool(0.7) {
                push(
                    &mut steps,
                    t,
                    json!({"type": "call.answered", "answered_by": {
                    "type": "customer", "extension": agent.0, "extension_name": agent.1, "ref_id": ref_id}}),
                );
                answered_at = Some(t);
                answered_ext = Some(agent);
            } else {
                missed = vec![agent.0.to_owned()];
            }
            last_stage = "extension";
        }
    }
    let answered = answered_at.is_some();
    let talk = if answered {
        rng.random_range(20.0..600.0)
    } else {
        0.0
    };
    let end = t + talk + 0.5;
    let mut ended = json!({
        "status": if answered { "answered" } else { "missed" },
        "duration": end.round() as i64,
        "billsec": talk.round() as i64,
        "hangup_cause": if answered { "NORMAL_CLEARING" } else { *pick(rng, HANGUP_CAUSES) },
        "hangup_by": if answered { *pick(rng, &["customer", "extension"]) } else { "system" },
        "missed_extensions": missed,
        "last_stage": last_stage,
    });
    if let Some((ext, name)) = answered_ext {
        ended["answered_extension"] = json!(ext);
        ended["answered_extension_name"] = json!(name);
        ended["recording_url"] = json!(format!("https://recordings.example.com/{call_id}.mp3"));
    }
    let answered_offset = answered_at;
    push(
        &mut steps,
        end,
        json!({"type": "call.ended", "ended": ended, "_answered_offset": answered_offset}),
    );
    PlannedCall {
        flow,
        answered,
        steps,
    }
}

/// Fills in the times of a step: `occurred_at` now, `started_at` when the call began, and the
/// end's `answered_at`/`ended_at`.
fn stamp(mut event: Value, started: Timestamp, now: Timestamp, speed: f64) -> Value {
    event["occurred_at"] = json!(now.to_string());
    event["call"]["started_at"] = json!(started.to_string());
    if let Some(ended) = event.get_mut("ended") {
        ended["ended_at"] = json!(now.to_string());
    }
    if let Some(offset) = event
        .as_object_mut()
        .and_then(|o| o.remove("_answered_offset"))
        && let Some(secs) = offset.as_f64()
    {
        let at = started
            .saturating_add(jiff::SignedDuration::from_secs_f64(secs / speed))
            .unwrap_or(started);
        event["ended"]["answered_at"] = json!(at.to_string());
    }
    event
}

#[derive(Default)]
struct Tally {
    flows: BTreeMap<&'static str, (u32, u32)>,
    events: BTreeMap<String, u32>,
    posted: u64,
    duplicates: u64,
    deliveries: u64,
    errors: u64,
    latencies: Vec<Duration>,
}

/// Runs the simulation to the end and prints a summary.
pub async fn run(opts: Options) -> anyhow::Result<()> {
    anyhow::ensure!(opts.calls > 0, "--calls must be at least 1");
    anyhow::ensure!(opts.rate > 0.0, "--rate must be above 0");
    anyhow::ensure!(opts.speed > 0.0, "--speed must be above 0");
    crate::init_crypto();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    let base = opts.server.trim_end_matches('/').to_owned();
    let numbers: Value = http
        .get(format!("{base}/v1/numbers?limit=1000"))
        .bearer_auth(&opts.api_key)
        .send()
        .await
        .with_context(|| format!("cannot reach callhook at {base}"))?
        .error_for_status()
        .context("cannot list the account's numbers (is the API key right?)")?
        .json()
        .await?;
    let dids: Vec<String> = numbers["data"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|n| n["number"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    anyhow::ensure!(
        !dids.is_empty(),
        "the account has no numbers; add one first (POST /v1/numbers, or Numbers in the web page)"
    );

    let mut rng = StdRng::seed_from_u64(opts.seed);
    let run_id = Timestamp::now().as_second();
    let mut plans = Vec::with_capacity(opts.calls as usize);
    for i in 0..opts.calls {
        let did = pick(&mut rng, &dids).clone();
        let call_id = format!("sim{run_id}.{i}");
        plans.push(plan_call(
            &mut rng,
            &call_id,
            &did,
            &format!("sim{run_id}-{i}"),
        ));
    }
    let mut tally = Tally::default();
    for p in &plans {
        let e = tally.flows.entry(p.flow.name()).or_default();
        e.0 += 1;
        e.1 += p.answered as u32;
    }
    // Every step at its wall-clock time: call i starts at i / rate, its steps at `at / speed`.
    let start = Instant::now();
    let mut queue: BinaryHeap<Reverse<(Duration, usize, usize)>> = BinaryHeap::new();
    for (i, p) in plans.iter().enumerate() {
        let begin = Duration::from_secs_f64(i as f64 / opts.rate);
        for (j, s) in p.steps.iter().enumerate() {
            queue.push(Reverse((
                begin + Duration::from_secs_f64(s.at / opts.speed),
                i,
                j,
            )));
        }
    }
    let total = queue.len();
    let mut started_at: Vec<Option<Timestamp>> = vec![None; plans.len()];
    let mut last_print = Instant::now();
    while let Some(Reverse((due, _, _))) = queue.peek().copied() {
        let elapsed = start.elapsed();
        if due > elapsed {
            tokio::time::sleep(due - elapsed).await;
        }
        // Everything due now goes in one request; PBX clocks tick in milliseconds at best.
        let now = Timestamp::from_millisecond(Timestamp::now().as_millisecond())
            .unwrap_or(Timestamp::now());
        let mut batch = Vec::new();
        while let Some(Reverse((due, i, j))) = queue.peek().copied() {
            if due > start.elapsed() || batch.len() >= 500 {
                break;
            }
            queue.pop();
            let begun = *started_at[i].get_or_insert(now);
            let ev = stamp(plans[i].steps[j].event.clone(), begun, now, opts.speed);
            *tally
                .events
                .entry(ev["type"].as_str().unwrap_or("?").to_owned())
                .or_default() += 1;
            batch.push(ev);
        }
        let sent = Instant::now();
        match http
            .post(format!("{base}/v1/events"))
            .bearer_auth(&opts.api_key)
            .json(&batch)
            .send()
            .await
        {
            Ok(r) if r.status().as_u16() == 202 => {
                tally.latencies.push(sent.elapsed());
                let v: Value = r.json().await.unwrap_or(Value::Null);
                tally.posted += v["accepted"].as_u64().unwrap_or(0);
                tally.duplicates += v["duplicates"].as_u64().unwrap_or(0);
                tally.deliveries += v["deliveries"].as_u64().unwrap_or(0);
            }
            Ok(r) => {
                tally.errors += batch.len() as u64;
                let status = r.status();
                let body = r.text().await.unwrap_or_default();
                eprintln!("\ncallhook answered {status}: {body}");
            }
            Err(e) => {
                tally.errors += batch.len() as u64;
                eprintln!("\ncannot post events: {e}");
            }
        }
        if !opts.quiet && (last_print.elapsed() > Duration::from_millis(200) || queue.is_empty()) {
            last_print = Instant::now();
            progress(total - queue.len(), total, &tally);
        }
    }
    if !opts.quiet {
        eprintln!();
    }
    summary(&tally, start.elapsed());
    anyhow::ensure!(
        tally.errors == 0,
        "{} events were not accepted",
        tally.errors
    );
    Ok(())
}

fn progress(done: usize, total: usize, t: &Tally) {
    let width = 30;
    let filled = done * width / total.max(1);
    eprint!(
        "\r[{}{}] {done}/{total} events · {} deliveries · {} errors",
        "#".repeat(filled),
        "-".repeat(width - filled),
        t.deliveries,
        t.errors
    );
    let _ = std::io::stderr().flush();
}

fn summary(t: &Tally, took: Duration) {
    println!("calls");
    for (flow, (n, answered)) in &t.flows {
        println!(
            "  {flow:<24} {n:>6}  ({answered} answered, {} missed)",
            n - answered
        );
    }
    println!("events");
    for (ty, n) in &t.events {
        println!("  {ty:<24} {n:>6}");
    }
    let mut lat = t.latencies.clone();
    lat.sort();
    let p = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q) as usize)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
    };
    println!(
        "accepted {} events ({} duplicates) in {:.1} s; {} deliveries created; {} errors",
        t.posted,
        t.duplicates,
        took.as_secs_f64(),
        t.deliveries,
        t.errors
    );
    println!(
        "POST /v1/events latency: p50 {:.1} ms, p99 {:.1} ms",
        p(0.5),
        p(0.99)
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::event::CallEvent;
    use crate::core::trigger::Trigger;

    fn plans(seed: u64, n: usize) -> Vec<PlannedCall> {
        let mut rng = StdRng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                plan_call(
                    &mut rng,
                    &format!("c{i}"),
                    "+918065251305",
                    &format!("e{i}"),
                )
            })
            .collect()
    }

    fn events(p: &PlannedCall) -> Vec<CallEvent> {
        let t0: Timestamp = "2026-11-27T04:00:00Z".parse().unwrap();
        p.steps
            .iter()
            .map(|s| {
                let now = t0
                    .saturating_add(jiff::SignedDuration::from_secs_f64(s.at))
                    .unwrap();
                let v = stamp(s.event.clone(), t0, now, 1.0);
                CallEvent::from_json(&v).unwrap_or_else(|e| panic!("{v}: {e}"))
            })
            .collect()
    }

    #[test]
    fn the_same_seed_plans_the_same_calls() {
        assert_eq!(plans(7, 50), plans(7, 50));
        assert_ne!(plans(7, 50), plans(8, 50));
    }

    #[test]
    fn every_event_is_valid_and_every_trigger_is_exercised() {
        let mut fired = std::collections::BTreeSet::new();
        for p in plans(1, 300) {
            let evs = events(&p);
            assert_eq!(
                evs.first().map(|e| e.event_type().as_str()),
                Some("call.received")
            );
            assert_eq!(
                evs.last().map(|e| e.event_type().as_str()),
                Some("call.ended")
            );
            assert!(
                p.steps.windows(2).all(|w| w[0].at <= w[1].at),
                "steps in time order"
            );
            for e in &evs {
                fired.extend(Trigger::firing_for(e));
            }
        }
        assert_eq!(fired.len(), 11, "{fired:?}");
    }
}
