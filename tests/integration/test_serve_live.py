"""Black-box test of live progress and job control in `mus2pic serve`.

- WebSocket /ws/jobs/{id}: a snapshot, then every event in order (dense seq) through
  the steps, the findings (tempo, key, prompt, each saved image) to the final state
  with its images; a reconnect with ?since=SEQ replays exactly what was missed;
  /ws/queue carries the state changes.
- Cancel mid-render: the running job stops at the next step and ends cancelled.
- A render failure after the prompt (lcm without weights) ends "partial" with the
  analysis and prompt kept, and can be retried.
- Transient failures (test-only unsafe_test_fail_first): retried with backoff and
  jitter (not_before in the future), the failure's code kept, success on a later
  attempt; when attempts run out the job fails with the transient code.
"""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import WS, Server, check, demo_song, multipart  # noqa: E402


def collect(ws, until_status, timeout=120):
    events = []
    deadline = time.time() + timeout
    while time.time() < deadline:
        ev = ws.recv_json(timeout=max(1, deadline - time.time()))
        events.append(ev)
        if ev.get("type") == "state" and ev.get("status") in until_status:
            return events
    check(False, f"no final state in {events[-5:]}")


def live(srv, song):
    srv.json("POST", "/api/queue/pause", expect=200)
    qws = WS(srv.port, "/ws/queue")
    check(qws.status == 101, qws.head)
    qsnap = qws.recv_json()
    check(qsnap["type"] == "snapshot" and "counts" in qsnap, qsnap)

    body, hdrs = multipart({"variations": "2"}, [("file", "song.wav", song)])
    st, job = srv.json("POST", "/api/jobs", body, hdrs, expect=201)
    jid = job["id"]
    ws = WS(srv.port, f"/ws/jobs/{jid}")
    check(ws.status == 101, ws.head)
    snap = ws.recv_json()
    check(snap["type"] == "snapshot" and snap["job"]["id"] == jid and snap["job"]["status"] == "queued", snap)
    first = snap["seq"]
    srv.json("POST", "/api/queue/resume", expect=200)
    events = collect(ws, ("succeeded", "failed", "cancelled", "partial"))
    ws.close()
    seqs = [e["seq"] for e in events]
    check(seqs == list(range(first + 1, first + 1 + len(seqs))), f"events not dense and ordered: {seqs}")
    types = [e["type"] for e in events]
    steps = [e["step"] for e in events if e["type"] == "step"]
    check(steps == ["fetch", "decode", "analyze", "prompt", "render", "store"] or
          steps == ["decode", "analyze", "prompt", "render", "store"], f"steps out of order: {steps}")
    findings = {e["key"]: e for e in events if e["type"] == "finding"}
    check("Found tempo" in findings["tempo"]["text"] and "Key:" in findings["key"]["text"], findings)
    check(findings["prompt"]["text"], findings)
    saved = [e for e in events if e["type"] == "finding" and e["key"] == "image"]
    check([e["index"] for e in saved] == [0, 1] and all("/" not in e["file"] for e in saved), saved)
    check("progress" in types, "no progress events")
    for e in events:
        if e["type"] == "progress":
            check(0.0 <= e["fraction"] <= 1.0, e)
    final = events[-1]
    check(final["status"] == "succeeded" and len(final["images"]) == 2, final)
    # order of milestones: tempo before prompt before first image before the end
    order = [e["seq"] for e in (findings["tempo"], findings["prompt"], saved[0], final)]
    check(order == sorted(order), f"milestones out of order: {order}")

    # a reconnecting client loses nothing
    cut = seqs[len(seqs) // 2]
    ws2 = WS(srv.port, f"/ws/jobs/{jid}?since={cut}")
    snap2 = ws2.recv_json()
    check(snap2["type"] == "snapshot" and snap2["job"]["status"] == "succeeded" and snap2["seq"] == seqs[-1], snap2)
    replay = [ws2.recv_json() for _ in range(seqs[-1] - cut)]
    ws2.close()
    check([e["seq"] for e in replay] == seqs[seqs.index(cut) + 1:], "replay differs")
    check([e["type"] for e in replay] == types[seqs.index(cut) + 1:], "replayed types differ")
    # the same log over HTTP for polling clients
    st, ev = srv.json("GET", f"/api/jobs/{jid}/events?since={first}", expect=200)
    check([e["seq"] for e in ev["events"]] == seqs, "HTTP events differ from WebSocket events")

    # the queue stream saw the job's state changes in order
    qevents = []
    while True:
        e = qws.recv_json(timeout=10)
        if e.get("job_id") == jid:
            qevents.append(e)
        if e.get("type") == "state" and e.get("status") == "succeeded" and e.get("job_id") == jid:
            break
    qws.close()
    qstates = [e["status"] for e in qevents if e["type"] == "state"]
    check(qstates[0] == "queued" and qstates[-1] == "succeeded" and "running" in qstates, qstates)
    qseq = [e["seq"] for e in qevents]
    check(qseq == sorted(qseq), "queue events out of order")


def cancel(srv, song):
    body, hdrs = multipart({"variations": "8", "size": "768x768"}, [("file", "song.wav", song)])
    st, job = srv.json("POST", "/api/jobs", body, hdrs, expect=201)
    jid = job["id"]
    ws = WS(srv.port, f"/ws/jobs/{jid}")
    ws.recv_json()
    deadline = time.time() + 120
    while time.time() < deadline:
        ev = ws.recv_json()
        if ev["type"] in ("step", "progress") and ev["step"] == "render":
            break
        check(ev.get("status") not in ("succeeded", "failed"), f"job ended before render: {ev}")
    t0 = time.time()
    st, c = srv.json("POST", f"/api/jobs/{jid}/cancel", expect=202)
    check(c["status"] == "running" and c["cancel_requested"] is True, c)
    events = collect(ws, ("succeeded", "failed", "cancelled", "partial"))
    ws.close()
    final = events[-1]
    check(final["status"] == "cancelled" and final["error"]["code"] == "cancelled", final)
    check(time.time() - t0 < 60, "cancel took too long")
    done = srv.wait_job(jid)
    check(done["status"] == "cancelled" and done["images"] == [] and done["attempts"] == 1, done)


def partial(srv, song):
    """Rendering fails after the prompt (lcm without weights): partial, analysis and prompt kept."""
    body, hdrs = multipart({"renderer": "lcm"}, [("file", "song.wav", song)])
    st, job = srv.json("POST", "/api/jobs", body, hdrs, expect=201)
    done = srv.wait_job(job["id"])
    check(done["status"] == "partial" and done["error"]["code"] == "model_missing", done)
    check(done["attempts"] == 1 and done["images"] == [], done)
    check(done["result"]["prompt"]["positive"] and done["result"]["analysis"]["tempo_bpm"] > 0, done["result"])
    st, r = srv.json("POST", f"/api/jobs/{job['id']}/retry", expect=202)
    check(r["status"] in ("queued", "running"), r)
    again = srv.wait_job(job["id"])
    check(again["status"] == "partial", again)


def retries(song):
    srv = Server(settings={"unsafe_test_fail_first": "2", "max_attempts": "3", "retry_base_s": "0.4"}).start()
    try:
        body, hdrs = multipart({}, [("file", "song.wav", song)])
        st, job = srv.json("POST", "/api/jobs", body, hdrs, expect=201)
        jid = job["id"]
        # catch it waiting for its retry: queued, error kept, not_before in the future
        seen_wait = None
        deadline = time.time() + 30
        while time.time() < deadline and seen_wait is None:
            st, j = srv.json("GET", f"/api/jobs/{jid}", expect=200)
            if j["status"] == "queued" and j["attempts"] >= 1 and j["error"] is not None:
                seen_wait = j
            time.sleep(0.02)
        check(seen_wait is not None, "never saw the job waiting for a retry")
        check(seen_wait["error"]["code"] == "fetch_network" and seen_wait["error"]["hint"], seen_wait)
        check(seen_wait["not_before"] > seen_wait["updated_at"] - 0.01, seen_wait)
        done = srv.wait_job(jid)
        check(done["status"] == "succeeded" and done["attempts"] == 3 and done["error"] is None, done)
        st, ev = srv.json("GET", f"/api/jobs/{jid}/events", expect=200)
        waits = [e for e in ev["events"] if e["type"] == "state" and e["status"] == "queued" and "retry_at" in e]
        check(len(waits) == 2 and all(e["error"]["code"] == "fetch_network" for e in waits), waits)
        gap1 = waits[0]["retry_at"] - waits[0]["at"]
        gap2 = waits[1]["retry_at"] - waits[1]["at"]
        check(0.2 - 0.01 <= gap1 <= 0.6 + 0.01 and 0.4 - 0.01 <= gap2 <= 1.2 + 0.01,
              f"backoff not base*2^n with jitter: {gap1:.3f} {gap2:.3f}")
        srv.stop()
    finally:
        srv.cleanup()
    srv = Server(settings={"unsafe_test_fail_first": "5", "max_attempts": "2", "retry_base_s": "0.2"}).start()
    try:
        body, hdrs = multipart({}, [("file", "song.wav", song)])
        st, job = srv.json("POST", "/api/jobs", body, hdrs, expect=201)
        done = srv.wait_job(job["id"])
        check(done["status"] == "failed" and done["attempts"] == 2, done)
        check(done["error"]["code"] == "fetch_network" and "injected" in done["error"]["detail"], done)
        st, r = srv.json("POST", f"/api/jobs/{job['id']}/retry", expect=202)
        check(r["attempts"] <= 1, r)
        again = srv.wait_job(job["id"])
        check(again["status"] == "failed" and again["attempts"] == 2, f"retry must reset the attempts: {again}")
        srv.stop()
    finally:
        srv.cleanup()


def main():
    srv = Server().start()
    try:
        song = demo_song(os.path.join(srv.data_dir, "song.wav"), seconds=6, seed=4)
        live(srv, song)
        cancel(srv, song)
        partial(srv, song)
        srv.stop()
        retries(song)
    except BaseException:
        srv.dump()
        raise
    finally:
        srv.cleanup()
    print("ok")


if __name__ == "__main__":
    main()
