#!/usr/bin/env python3
"""Render a held-out corpus of General MIDI songs with known tempo, key and mode.

The DSP accuracy benchmark measures tempo and key estimation on these songs; they are made with
real sampled instruments (a General MIDI soundfont through FluidSynth), not with Mus2Pic's own
synthesiser (src/audio/synth.c), so the estimators are not graded on the sound they were tuned on.

Each song: 4/4, one tempo from 60 to 180 BPM, 30 to 60 s, a drum kit on channel 10 with a clear
pattern (kick and snare backbeat, four-on-the-floor, a ballad, or a syncopated funk groove; hats
straight or swung; the snare always on 2 and 4), a bass on the chord roots (tonic emphasised), chords (piano, guitar, strings, organ, pads...),
a melody on the scale, diatonic progressions typical of the mode (every section starts on the tonic
and ends with a V–I cadence), intro / A / B / A / outro, ending on the tonic chord. 48 songs cover
the 24 keys twice (different tempo, groove and instruments each time).

Output (outside git): OUT/songNN.{ogg,mp3} (alternating), OUT/midi/songNN.mid, OUT/truth.json:
  {"generator": ..., "songs": [{"file": "song01.ogg", "tempo": 124.0, "key": "A", "key_pc": 9,
    "mode": "minor", "seconds": 43.9, "music_seconds": 41.9, "first_downbeat_s": 0.0, "meter": "4/4", "groove": "rock",
    "swing": false, "instruments": {...}, "progressions": [...]}, ...]}

Usage: python3 tools/songs/make_corpus.py [--out /tmp/m2p-corpus] [--count 48] [--seed 1]
       [--soundfont /usr/share/sounds/sf3/default-GM.sf3]
Needs: python3 (standard library only), fluidsynth, a GM soundfont (musescore-general-soundfont-small
or fluid-soundfont-gm), ffmpeg. Deterministic for a given seed and soundfont.
"""
import argparse
import json
import os
import random
import shutil
import struct
import subprocess
import sys

NAMES = ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"]
MAJOR = [0, 2, 4, 5, 7, 9, 11]
MINOR = [0, 2, 3, 5, 7, 8, 10]
TPQ = 480  # ticks per quarter note

# Progressions as scale degrees (0-based); 'V' in minor is the harmonic major V (raised 7th).
PROG_MAJOR = [
    ["I", "V", "vi", "IV"], ["I", "IV", "V", "I"], ["I", "vi", "ii", "V"], ["I", "iii", "IV", "V"],
    ["I", "IV", "vi", "V"], ["I", "V", "IV", "V"], ["I", "ii", "IV", "V"],
]
PROG_MINOR = [
    ["i", "iv", "v", "i"], ["i", "VI", "III", "VII"], ["i", "iv", "VII", "III"], ["i", "VI", "iv", "V"],
    ["i", "VII", "VI", "V"], ["i", "iv", "i", "V"], ["i", "III", "iv", "V"],
]
ROMAN = {"i": 0, "ii": 1, "iii": 2, "iv": 3, "v": 4, "vi": 5, "vii": 6}

CHORD_INSTR = [("acoustic grand piano", 0), ("electric piano", 4), ("drawbar organ", 16),
               ("nylon guitar", 24), ("steel guitar", 25), ("clean electric guitar", 27),
               ("string ensemble", 48), ("slow strings", 49), ("warm pad", 89), ("vibraphone", 11)]
BASS_INSTR = [("acoustic bass", 32), ("finger bass", 33), ("picked bass", 34), ("fretless bass", 35),
              ("synth bass", 38)]
LEAD_INSTR = [("flute", 73), ("violin", 40), ("trumpet", 56), ("alto sax", 65), ("clarinet", 71),
              ("acoustic grand piano", 0), ("square lead", 80), ("oboe", 68)]
GROOVES = ["rock", "four-on-the-floor", "funk", "swing", "ballad"]

KICK, SNARE, HAT, OPEN_HAT, RIDE, CRASH, SIDESTICK = 36, 38, 42, 46, 51, 49, 37


def chord_pcs(symbol, key, minor):
    """Pitch classes (absolute) of a roman-numeral triad; the root first."""
    base = symbol.lower().rstrip("°")
    degree = ROMAN[base]
    scale = MINOR if minor else MAJOR
    pcs = []
    for j in range(3):
        d = (degree + 2 * j) % 7
        pc = scale[d]
        if minor and symbol == "V" and d == 6:
            pc += 1  # harmonic minor: the leading tone
        pcs.append((key + pc) % 12)
    return pcs


def place(pc, lo):
    """MIDI note of pitch class pc in [lo, lo + 12)."""
    return lo + (pc - lo) % 12


class Track:
    def __init__(self, channel, program=None, name=""):
        self.channel = channel
        self.events = []  # (tick, order, bytes)
        self.name = name
        if program is not None:
            self.events.append((0, 0, bytes([0xC0 | channel, program])))

    def note(self, tick, dur, pitch, vel):
        pitch = max(0, min(127, int(pitch)))
        vel = max(1, min(127, int(vel)))
        tick = max(0, int(round(tick)))
        dur = max(1, int(round(dur)))
        self.events.append((tick, 2, bytes([0x90 | self.channel, pitch, vel])))
        self.events.append((tick + dur, 1, bytes([0x80 | self.channel, pitch, 0])))

    def encode(self):
        out = bytearray()
        name = self.name.encode("ascii", "replace")[:60]
        out += b"\x00\xff\x03" + vlq(len(name)) + name
        last = 0
        for tick, _, data in sorted(self.events, key=lambda e: (e[0], e[1])):
            out += vlq(tick - last) + data
            last = tick
        out += b"\x00\xff\x2f\x00"
        return b"MTrk" + struct.pack(">I", len(out)) + bytes(out)


def vlq(v):
    out = [v & 0x7F]
    v >>= 7
    while v:
        out.append(0x80 | (v & 0x7F))
        v >>= 7
    return bytes(reversed(out))


def write_midi(path, tempo, tracks):
    meta = bytearray()
    uspq = int(round(60_000_000 / tempo))
    meta += b"\x00\xff\x51\x03" + struct.pack(">I", uspq)[1:]
    meta += b"\x00\xff\x58\x04\x04\x02\x18\x08"  # 4/4
    meta += b"\x00\xff\x2f\x00"
    chunks = [b"MTrk" + struct.pack(">I", len(meta)) + bytes(meta)] + [t.encode() for t in tracks]
    with open(path, "wb") as f:
        f.write(b"MThd" + struct.pack(">IHHH", 6, 1, len(chunks), TPQ))
        for c in chunks:
            f.write(c)


def swing_tick(beat_pos, swing):
    """Tick of a position in beats; swung eighths land on the triplet (2/3 of the beat)."""
    whole = int(beat_pos)
    frac = beat_pos - whole
    if swing and abs(frac - 0.5) < 1e-6:
        frac = 2.0 / 3.0
    return (whole + frac) * TPQ


def make_song(idx, rng, key, minor, tempo, seconds_target):
    bar_s = 240.0 / tempo
    total_bars = max(8, int(round(seconds_target / bar_s)))
    groove = GROOVES[idx % len(GROOVES)]
    if rng.random() < 0.3:
        groove = rng.choice(GROOVES)
    swing = groove == "swing" or (groove == "rock" and rng.random() < 0.25)
    progs = PROG_MINOR if minor else PROG_MAJOR
    pa, pb = rng.sample(range(len(progs)), 2)
    prog_a, prog_b = progs[pa], progs[pb]
    cadence = ["iv", "V", "i", "i"] if minor else ["IV", "V", "I", "I"]
    chord_name, chord_prog = rng.choice(CHORD_INSTR)
    bass_name, bass_prog = rng.choice(BASS_INSTR)
    lead_name, lead_prog = rng.choice(LEAD_INSTR)
    scale = MINOR if minor else MAJOR

    # sections: intro 2-4 bars, A, B, A ..., outro (cadence) 4 bars
    intro = 4 if total_bars >= 20 else 2
    outro = 4
    middle = total_bars - intro - outro
    plan = [("intro", intro)]
    unit = 8 if middle >= 16 else 4
    kinds = ["A", "B"]
    k = 0
    while middle > 0:
        n = min(unit, middle)
        if middle - n < 4:
            n = middle
        plan.append((kinds[k % 2], n))
        middle -= n
        k += 1
    plan.append(("outro", outro))

    drums = Track(9, None, "drums")
    bass = Track(1, bass_prog, bass_name)
    chords = Track(2, chord_prog, chord_name)
    lead = Track(3, lead_prog, lead_name)

    def jitter():
        return rng.gauss(0, 6)  # ticks (about 5 ms at 120 BPM): human, never off the beat

    motifs = {}
    for name in ("A", "B"):
        motif = []
        for half in range(2):
            rhythm = rng.choice([
                [(0, 1), (1, 1), (2, 2)], [(0, 1.5), (1.5, 0.5), (2, 1), (3, 1)],
                [(0, 0.5), (0.5, 0.5), (1, 1), (2, 0.5), (2.5, 1.5)], [(0.5, 1), (1.5, 0.5), (2, 2)],
                [(0, 0.75), (0.75, 0.75), (1.5, 0.5), (2, 2)], [(0, 1), (1, 0.5), (1.5, 0.5), (2, 1), (3, 1)],
            ])
            prev = rng.choice([0, 2, 4])
            notes = []
            for start, dur in rhythm:
                if start in (0, 2):
                    step = rng.choice([0, 2, 4])
                else:
                    step = prev + rng.choice([-2, -1, 1, 2])
                notes.append((start, dur, step))
                prev = step
            motif.append(notes)
        motifs[name] = motif

    bar = 0
    section_log = []
    tonic_mel = place(key, 62)
    for sec, nbars in plan:
        section_log.append({"section": sec, "first_bar": bar, "bars": nbars,
                            "start_s": round(bar * bar_s, 3)})
        for b in range(nbars):
            t0 = bar * 4 * TPQ
            last_bar = sec == "outro" and b == nbars - 1
            if sec == "outro":
                sym = cadence[max(0, 4 - (nbars - b))] if nbars - b <= 4 else prog_a[b % 4]
            elif sec == "B":
                sym = prog_b[b % 4]
                if b == nbars - 1:
                    sym = "V"  # half cadence back into A
            else:
                sym = prog_a[b % 4]
            pcs = chord_pcs(sym, key, minor)
            root = pcs[0]
            energy = {"intro": 0.6, "A": 0.8, "B": 1.0, "outro": 0.7}[sec]

            # drums
            if last_bar:
                drums.note(t0, TPQ, KICK, 110)
                drums.note(t0, 4 * TPQ, CRASH, 100)
            else:
                for beat in range(4):
                    bt = t0 + beat * TPQ
                    if groove == "four-on-the-floor":
                        drums.note(bt, TPQ // 2, KICK, 112 if beat == 0 else 100)
                    elif groove == "funk":
                        if beat in (0, 2):
                            drums.note(bt, TPQ // 2, KICK, 112)
                        if beat == 1:
                            drums.note(bt + TPQ * 0.5, TPQ // 4, KICK, 90)  # the syncopated kick
                    elif groove == "ballad":
                        if beat == 0:
                            drums.note(bt, TPQ // 2, KICK, 110)
                        if beat == 2:
                            drums.note(bt, TPQ // 2, KICK, 95)
                    else:
                        if beat in (0, 2):
                            drums.note(bt, TPQ // 2, KICK, 110 if beat == 0 else 100)
                        if beat == 2 and rng.random() < 0.3:
                            drums.note(swing_tick(beat + 0.5, swing) + t0, TPQ // 4, KICK, 85)
                    if beat in (1, 3) and sec != "intro":
                        drums.note(bt + jitter() * 0.3, TPQ // 2, SNARE, 105)
                    elif beat in (1, 3):
                        drums.note(bt, TPQ // 2, SIDESTICK, 80)
                    cymbal = RIDE if groove == "swing" else HAT
                    subdiv = 4 if groove == "funk" else 2
                    for s in range(subdiv):
                        pos = beat + s / subdiv
                        tick = t0 + (swing_tick(pos, swing) if subdiv == 2 else pos * TPQ)
                        vel = 80 if s == 0 else 60
                        note = OPEN_HAT if (groove == "rock" and beat == 3 and s == 1 and sec == "B") else cymbal
                        drums.note(tick, TPQ // 4, note, vel * energy + 10)
                if b == 0 and sec in ("A", "B"):
                    drums.note(t0, 2 * TPQ, CRASH, 90)

            # bass: roots, the tonic on bar starts of the intro and outro
            lo = place(root, 33)
            if last_bar:
                bass.note(t0, 4 * TPQ - 10, place(key, 33), 105)
            elif sec == "intro":
                bass.note(t0, 2 * TPQ - 20, lo, 90)
                bass.note(t0 + 2 * TPQ, 2 * TPQ - 20, lo, 85)
            elif groove == "swing":
                # walking bass: root, a scale tone, the fifth, an approach note
                fifth = place(chord_pcs(sym, key, minor)[2], lo)
                mid = place((key + scale[(scale.index((root - key) % 12) + 1) % 7]) % 12
                            if (root - key) % 12 in scale else root, lo)
                for beat, p in enumerate([lo, mid, fifth, lo + 12 if rng.random() < 0.5 else fifth]):
                    bass.note(t0 + beat * TPQ + jitter(), TPQ - 30, p, 95)
            elif groove == "funk":
                for pos, p in [(0, lo), (0.75, lo + 12), (1.5, lo), (2, lo), (2.75, lo + 7), (3.5, lo)]:
                    bass.note(t0 + pos * TPQ, TPQ * 0.45, p, 100)
            else:
                pat = [(0, lo, 1.5), (1.5, lo, 0.5), (2, place((root + 7) % 12, lo), 1.0), (3, lo, 1.0)]
                for pos, p, dur in pat:
                    bass.note(t0 + swing_tick(pos, swing) + jitter(), dur * TPQ - 30, p, 98)

            # chords around middle C
            voicing = [place(pc, 55) for pc in pcs]
            if chord_prog in (48, 49, 89, 16) or sec == "intro" or last_bar:
                for p in voicing:
                    chords.note(t0, 4 * TPQ - 15, p, 70 * energy + 10)
            else:
                hits = [(0, 1.5), (1.5, 1.0), (2.5, 1.5)] if groove in ("funk", "rock") else [(0, 2), (2, 2)]
                for pos, dur in hits:
                    for j, p in enumerate(voicing):
                        chords.note(t0 + swing_tick(pos, swing) + j * 8, dur * TPQ - 20, p, 72 * energy + 8)

            # melody: a 2-bar motif over the chords, cadencing on the tonic at section ends
            if last_bar:
                lead.note(t0, 4 * TPQ - 20, tonic_mel, 96)
            elif sec in ("A", "B", "outro"):
                motif = motifs["A" if sec == "outro" else sec][b % 2]
                degree0 = scale.index((root - key) % 12) if (root - key) % 12 in scale else 0
                for i, (start, dur, step) in enumerate(motif):
                    final = b == nbars - 1 and i == len(motif) - 1
                    if final:
                        pitch = tonic_mel if sec != "B" else place((key + scale[4]) % 12, 62)
                        dur = 4 - start
                    else:
                        d = degree0 + step
                        pitch = place((key + scale[d % 7]) % 12, 62)
                    vel = (92 if start == 0 else 80) * (0.9 + 0.1 * energy)
                    lead.note(t0 + swing_tick(start, swing) + jitter(), dur * TPQ * 0.92, pitch, vel)
            bar += 1

    info = {
        "tempo": float(tempo), "key": NAMES[key], "key_pc": key, "mode": "minor" if minor else "major",
        "meter": "4/4", "first_downbeat_s": 0.0, "bars": total_bars, "groove": groove, "swing": swing,
        "instruments": {"chords": chord_name, "bass": bass_name, "lead": lead_name, "drums": "GM kit (channel 10)"},
        "progressions": [" ".join(prog_a), " ".join(prog_b), " ".join(cadence)], "sections": section_log,
        "music_seconds": round(total_bars * bar_s, 3),
    }
    return [drums, bass, chords, lead], info


def find_soundfont(given):
    if given:
        return given
    for p in ("/usr/share/sounds/sf3/default-GM.sf3", "/usr/share/sounds/sf2/FluidR3_GM.sf2",
              "/usr/share/sounds/sf2/TimGM6mb.sf2", "/usr/share/sounds/sf3/MuseScore_General.sf3"):
        if os.path.exists(p):
            return p
    sys.exit("make_corpus: no General MIDI soundfont found; apt-get install musescore-general-soundfont-small")


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if r.returncode != 0:
        sys.exit("make_corpus: %s failed: %s" % (cmd[0], r.stderr.decode(errors="replace")[-500:]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="/tmp/m2p-corpus")
    ap.add_argument("--count", type=int, default=48)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--soundfont", default="")
    args = ap.parse_args()
    for tool in ("fluidsynth", "ffmpeg"):
        if shutil.which(tool) is None:
            sys.exit("make_corpus: %s is needed (apt-get install %s)" % (tool, tool))
    sf = find_soundfont(args.soundfont)
    os.makedirs(os.path.join(args.out, "midi"), exist_ok=True)
    rng = random.Random(args.seed)
    songs = []
    tempos = [60 + (120 * i) // max(1, args.count - 1) for i in range(args.count)]  # 60..180, spread
    rng.shuffle(tempos)
    for i in range(args.count):
        key = i % 12
        minor = (i // 12) % 2 == 1
        tempo = float(tempos[i])
        seconds = rng.uniform(30.0, 56.0)  # music; the file adds 2 s of ring-out
        song_rng = random.Random(args.seed * 1000 + i)
        tracks, info = make_song(i, song_rng, key, minor, tempo, seconds)
        name = "song%02d" % (i + 1)
        mid = os.path.join(args.out, "midi", name + ".mid")
        wav = os.path.join(args.out, name + ".wav")
        write_midi(mid, tempo, tracks)
        # dynamic sample loading: only the instruments a song uses are decoded from the sf3 (2x faster,
        # the same output)
        run(["fluidsynth", "-ni", "-q", "-g", "0.5", "-r", "44100", "-o", "synth.dynamic-sample-loading=1",
             "-F", wav, sf, mid])
        ext = "ogg" if i % 2 == 0 else "mp3"
        out = os.path.join(args.out, name + "." + ext)
        codec = ["-c:a", "libvorbis", "-q:a", "5"] if ext == "ogg" else ["-c:a", "libmp3lame", "-b:a", "192k"]
        # keep 2 s of the final chord's ring and reverb, fading over the last second
        end = info["music_seconds"] + 2.0
        fade = ["-af", "afade=t=out:st=%.3f:d=1" % (end - 1.0), "-t", "%.3f" % end]
        run(["ffmpeg", "-v", "error", "-y", "-i", wav] + fade + codec + [out])
        info["seconds"] = round(end, 3)
        os.remove(wav)
        info["file"] = name + "." + ext
        songs.append(info)
        print("%s.%s  %5.1f BPM  %-2s %-5s  %-17s %s / %s / %s" % (
            name, ext, tempo, NAMES[key], info["mode"], info["groove"] + (" swung" if info["swing"] else ""),
            info["instruments"]["chords"], info["instruments"]["bass"], info["instruments"]["lead"]), flush=True)
    truth = {"generator": "tools/songs/make_corpus.py", "seed": args.seed, "soundfont": sf, "songs": songs}
    with open(os.path.join(args.out, "truth.json"), "w") as f:
        json.dump(truth, f, indent=1)
    print("wrote %d songs and truth.json to %s" % (len(songs), args.out))


if __name__ == "__main__":
    main()
