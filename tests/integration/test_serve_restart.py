"""Black-box test: no job is lost and none completes twice across restarts.

1. SIGKILL with jobs queued and one running: after a restart on the same data
   folder every job finishes exactly once (one final "succeeded" event, one image
   set with unique indexes); the interrupted one counted its attempt.
2. A job killed during every attempt fails with job_interrupted once
   max_attempts are used up (never requeued forever).
3. SIGTERM mid-job: the server exits 0 after the job reaches a step boundary;
   the job goes back to the queue without counting the attempt and finishes
   after the next start.
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from serve_util import Server, check, demo_song, multipart  # noqa: E402

SLOW = {"variations": "8", "size": "1024x1024"}  # long enough not to finish between a poll and a kill


def wait_running(srv, jid, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        st, j = srv.json("GET", f"/api/jobs/{jid}", expect=200)
        if j["status"] == "running" and (j["progress"] or {}).get("step") in ("analyze", "prompt", "render"):
            return j
        check(j["status"] in ("queued", "running"), f"job {jid} ended early: {j['status']}")
        time.sleep(0.05)
    check(False, f"job {jid} never ran")


def finished_once(srv, jid, n_images):
    st, j = srv.json("GET", f"/api/jobs/{jid}", expect=200)
    check(j["status"] == "succeeded", j)
    check(sorted(i["index"] for i in j["images"]) == list(range(n_images)), j["images"])
    # The final event is written just after the final status is committed: give it a moment.
    deadline = time.time() + 5
    while True:
        st, ev = srv.json("GET", f"/api/jobs/{jid}/events", expect=200)
        finals = [e for e in ev["events"] if e["type"] == "state" and e["status"] == "succeeded"]
        if finals or time.time() > deadline:
            break
        time.sleep(0.05)
    check(len(finals) == 1, f"job {jid} completed {len(finals)} times")
    st, g = srv.json("GET", f"/api/images?job={jid}", expect=200)
    check(g["total"] == n_images, f"job {jid} has {g['total']} image rows")
    return j


def main():
    srv = Server(settings={"workers": "1"})
    try:
        song = demo_song(os.path.join(srv.data_dir, "song.wav"), seconds=6, seed=5)
        srv.start()
        ids = []
        for i in range(4):
            body, hdrs = multipart(dict(SLOW, seed=str(100 + i)), [("file", "song.wav", song)])
            st, j = srv.json("POST", "/api/jobs", body, hdrs, expect=201)
            ids.append(j["id"])
        wait_running(srv, ids[0])
        srv.kill()
        srv.start()
        for jid in ids:
            srv.wait_job(jid, timeout=240)
        done = [finished_once(srv, jid, 8) for jid in ids]
        check(done[0]["attempts"] == 2, f"the killed job counts its attempt: {done[0]['attempts']}")
        check(all(d["attempts"] == 1 for d in done[1:]), [d["attempts"] for d in done])
        st, lst = srv.json("GET", "/api/jobs", expect=200)
        check(lst["total"] == 4, lst)

        # killed during every attempt → job_interrupted after max_attempts (3)
        body, hdrs = multipart(dict(SLOW, seed="999"), [("file", "song.wav", song)])
        st, j = srv.json("POST", "/api/jobs", body, hdrs, expect=201)
        for attempt in range(3):
            wait_running(srv, j["id"])
            srv.kill()
            srv.start()
        st, dead = srv.json("GET", f"/api/jobs/{j['id']}", expect=200)
        check(dead["status"] == "failed" and dead["error"]["code"] == "job_interrupted" and dead["attempts"] == 3,
              dead)

        # graceful stop mid-job: back to the queue, attempt not counted
        body, hdrs = multipart(dict(SLOW, seed="555"), [("file", "song.wav", song)])
        st, g = srv.json("POST", "/api/jobs", body, hdrs, expect=201)
        wait_running(srv, g["id"])
        t0 = time.time()
        rc = srv.stop(signal.SIGTERM)
        check(rc == 0 and time.time() - t0 < 60, f"graceful stop: rc {rc}")
        srv.start()
        gd = srv.wait_job(g["id"], timeout=240)
        check(gd["status"] == "succeeded" and gd["attempts"] == 1, gd)
        finished_once(srv, g["id"], 8)
        srv.stop()
    except BaseException:
        srv.dump()
        raise
    finally:
        srv.cleanup()
    print("ok")


if __name__ == "__main__":
    main()
