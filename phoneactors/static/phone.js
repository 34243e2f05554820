// phoneactors softphone: call the bot from a browser, exactly as a Twilio call would.
//
// Microphone → 8 kHz → G.711 μ-law → one 20 ms "media" message at a time over this server's
// /stream websocket, in Twilio's Media Streams JSON (connected, start, media, stop). The bot's
// μ-law audio comes back in "media" messages and is played with WebAudio; each "mark" is echoed
// once the audio sent before it has played, and "clear" drops the audio not yet played (and
// echoes the marks still waiting), as Twilio does. The server also sends this page "transcript"
// messages (its softphone token asks for them), shown as the conversation goes.
//
// No dependencies and no build step. For tests, window.softphone exposes the call's state,
// counters, transcript and the μ-law codec.
"use strict";

(() => {
  const RATE = 8000; // Twilio Media Streams carry 8 kHz mono μ-law
  const FRAME = 160; // samples in one 20 ms media message
  const START_SLACK = 0.05; // seconds between the first queued bot audio arriving and playing
  const FILTER_TAPS = 127; // low-pass filter before downsampling (Hamming-windowed sinc)
  const CUTOFF = 3400; // Hz: the telephone band

  // ---- G.711 μ-law, bit-exact with phoneactors.audio --------------------------------------

  const SEGMENT_ENDS = [0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff, 0x1fff];

  /** μ-law byte of one int16 sample (14-bit G.711 on sample >> 2). */
  function ulawEncode(sample) {
    const x = sample >> 2;
    const negative = x < 0;
    const magnitude = Math.min(negative ? -x : x, 8159) + 33;
    let segment = 0;
    while (segment < 8 && SEGMENT_ENDS[segment] < magnitude) segment++;
    const code = segment >= 8 ? 0x7f : (segment << 4) | ((magnitude >> (segment + 1)) & 0x0f);
    return (code ^ (negative ? 0x7f : 0xff)) & 0xff;
  }

  const ENCODE = new Uint8Array(65536); // indexed by sample + 32768
  for (let s = -32768; s < 32768; s++) ENCODE[s + 32768] = ulawEncode(s);

  const DECODE = new Int16Array(256);
  for (let byte = 0; byte < 256; byte++) {
    const u = ~byte & 0xff;
    const exponent = (u >> 4) & 0x07;
    const magnitude = ((((u & 0x0f) << 3) + 0x84) << exponent) - 0x84;
    DECODE[byte] = u & 0x80 ? -magnitude : magnitude;
  }

  function toBase64(bytes) {
    let text = "";
    for (let i = 0; i < bytes.length; i++) text += String.fromCharCode(bytes[i]);
    return btoa(text);
  }

  function fromBase64(text) {
    const raw = atob(text);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    return bytes;
  }

  function randomSid(prefix) {
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return prefix + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  // ---- Microphone: any rate → 8 kHz ----------------------------------------------------------

  /** Low-pass filter, then read the filtered signal every inputRate/8000 samples. */
  class Downsampler {
    constructor(inputRate) {
      this.step = inputRate / RATE;
      const n = this.step > 1 ? FILTER_TAPS : 1;
      this.taps = new Float32Array(n);
      if (n === 1) {
        this.taps[0] = 1;
      } else {
        const fc = CUTOFF / inputRate;
        let sum = 0;
        for (let i = 0; i < n; i++) {
          const m = i - (n - 1) / 2;
          const sinc = m === 0 ? 2 * fc : Math.sin(2 * Math.PI * fc * m) / (Math.PI * m);
          this.taps[i] = sinc * (0.54 - 0.46 * Math.cos((2 * Math.PI * i) / (n - 1)));
          sum += this.taps[i];
        }
        for (let i = 0; i < n; i++) this.taps[i] /= sum;
      }
      this.buffer = new Float32Array(0);
      this.position = 0; // of the next output sample, in filtered samples from buffer[0]
    }

    filtered(i) {
      let acc = 0;
      for (let k = 0; k < this.taps.length; k++) acc += this.taps[k] * this.buffer[i + k];
      return acc;
    }

    /** Float32 input samples in, Float32 8 kHz samples out. */
    process(input) {
      const joined = new Float32Array(this.buffer.length + input.length);
      joined.set(this.buffer);
      joined.set(input, this.buffer.length);
      this.buffer = joined;
      const last = this.buffer.length - this.taps.length; // highest index filtered() can take
      const out = [];
      while (Math.floor(this.position) + 1 <= last) {
        const i = Math.floor(this.position);
        const fraction = this.position - i;
        const a = this.filtered(i);
        out.push(fraction === 0 ? a : a + (this.filtered(i + 1) - a) * fraction);
        this.position += this.step;
      }
      const done = Math.min(Math.floor(this.position), this.buffer.length);
      this.buffer = this.buffer.slice(done);
      this.position -= done;
      return Float32Array.from(out);
    }
  }

  // ---- The bot's audio ------------------------------------------------------------------------

  /** Plays μ-law chunks back to back; echoes marks when the audio before them has played. */
  class Player {
    constructor(context, echo, counters) {
      this.context = context;
      this.echo = echo;
      this.counters = counters; // counters.playedSamples: bot audio played so far
      this.sources = new Set();
      this.playhead = 0; // context time at which everything queued will have played
      this.marks = []; // {name, at}: echo when the context's time reaches `at`
      this.timer = setInterval(() => this.echoDue(), 20);
    }

    play(bytes) {
      const samples = new Float32Array(bytes.length);
      for (let i = 0; i < bytes.length; i++) samples[i] = DECODE[bytes[i]] / 32768;
      const buffer = this.context.createBuffer(1, samples.length, RATE);
      buffer.copyToChannel(samples, 0);
      const source = this.context.createBufferSource();
      source.buffer = buffer;
      source.connect(this.context.destination);
      const now = this.context.currentTime;
      const at = this.playhead > now ? this.playhead : now + START_SLACK;
      source.startedAt = at;
      source.onended = () => {
        this.sources.delete(source);
        if (!source.cleared) this.counters.playedSamples += samples.length;
      };
      source.start(at);
      this.sources.add(source);
      this.playhead = at + buffer.duration;
    }

    mark(name) {
      this.marks.push({ name, at: this.playhead });
      this.echoDue();
    }

    echoDue() {
      const now = this.context.currentTime;
      while (this.marks.length && this.marks[0].at <= now) this.echo(this.marks.shift().name);
    }

    /** Drop what has not played yet; echo the marks still waiting (as Twilio does). */
    clear() {
      const now = this.context.currentTime;
      for (const source of this.sources) {
        source.cleared = true;
        const heard = Math.max(0, now - source.startedAt) * RATE;
        this.counters.playedSamples += Math.min(source.buffer.length, Math.round(heard));
        source.stop();
      }
      this.sources.clear();
      this.playhead = now;
      const pending = this.marks;
      this.marks = [];
      for (const mark of pending) this.echo(mark.name);
    }

    close() {
      clearInterval(this.timer);
      for (const source of this.sources) {
        source.cleared = true;
        source.stop();
      }
      this.sources.clear();
    }
  }

  // ---- The page -------------------------------------------------------------------------------

  const $ = (id) => document.getElementById(id);
  const callButton = $("call");
  const hangupButton = $("hangup");
  const token = document.querySelector('meta[name="phoneactors-softphone-token"]').content;

  const stats = { framesSent: 0, playedSamples: 0, marksEchoed: 0, clears: 0, transcripts: 0 };
  let call = null; // the call in progress
  let state = "idle"; // idle → connecting → connected → ended

  function setStatus(text) {
    $("status").textContent = text;
  }

  function setState(next) {
    state = next;
    callButton.disabled = next === "connecting" || next === "connected";
    hangupButton.disabled = !callButton.disabled;
  }

  function addLine(speaker, text) {
    const item = document.createElement("li");
    item.className = speaker;
    const who = document.createElement("span");
    who.className = "who";
    who.textContent = speaker === "caller" ? "you (as the bot heard it)" : "bot";
    item.append(who, document.createTextNode(text));
    $("transcript").append(item);
    item.scrollIntoView({ block: "nearest" });
  }

  function markInterrupted() {
    const bots = document.querySelectorAll("#transcript li.bot");
    if (bots.length) bots[bots.length - 1].classList.add("interrupted");
  }

  async function startCall() {
    if (!window.isSecureContext || !navigator.mediaDevices) {
      setStatus("The microphone needs a secure page: open it over https:// or on localhost.");
      return;
    }
    setState("connecting");
    setStatus("Asking for the microphone…");
    let microphone;
    try {
      microphone = await navigator.mediaDevices.getUserMedia({
        audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      });
    } catch (error) {
      setState("idle");
      setStatus(`No microphone: ${error.message}`);
      return;
    }
    const context = new AudioContext({ latencyHint: "interactive" });
    await context.audioWorklet.addModule(new URL("phone/capture-worklet.js", location.href));
    const capture = new AudioWorkletNode(context, "phoneactors-capture");
    const muted = context.createGain();
    muted.gain.value = 0; // keeps the capture node running without playing the microphone
    context.createMediaStreamSource(microphone).connect(capture);
    capture.connect(muted).connect(context.destination);

    const url = new URL("stream", location.href);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    url.searchParams.set("softphone", token);
    const socket = new WebSocket(url);
    const ids = { streamSid: randomSid("MZ"), callSid: randomSid("CA"), accountSid: randomSid("AC") };
    let sequence = 0;
    const send = (message) => {
      if (socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify({ ...message, sequenceNumber: String(++sequence) }));
      }
    };
    const player = new Player(context, (name) => {
      stats.marksEchoed++;
      send({ event: "mark", streamSid: ids.streamSid, mark: { name } });
    }, stats);
    call = { microphone, context, socket, player, ids, send, hungUp: false };

    const downsampler = new Downsampler(context.sampleRate);
    const frame = new Uint8Array(FRAME);
    let filled = 0;
    let chunk = 0;
    capture.port.onmessage = (event) => {
      if (state !== "connected") return;
      for (const sample of downsampler.process(event.data)) {
        const clipped = Math.max(-32768, Math.min(32767, Math.round(sample * 32768)));
        frame[filled++] = ENCODE[clipped + 32768];
        if (filled === FRAME) {
          filled = 0;
          chunk++;
          send({
            event: "media",
            streamSid: ids.streamSid,
            media: {
              track: "inbound",
              chunk: String(chunk),
              timestamp: String((chunk - 1) * 20),
              payload: toBase64(frame),
            },
          });
          stats.framesSent++;
        }
      }
    };

    socket.onopen = () => {
      socket.send(JSON.stringify({ event: "connected", protocol: "Call", version: "1.0.0" }));
      send({
        event: "start",
        streamSid: ids.streamSid,
        start: {
          accountSid: ids.accountSid,
          streamSid: ids.streamSid,
          callSid: ids.callSid,
          tracks: ["inbound"],
          customParameters: { caller: "softphone" },
          mediaFormat: { encoding: "audio/x-mulaw", sampleRate: RATE, channels: 1 },
        },
      });
      setState("connected");
      setStatus("Connected. Talk to the bot.");
    };
    socket.onmessage = (event) => {
      const message = JSON.parse(event.data);
      switch (message.event) {
        case "media":
          player.play(fromBase64(message.media.payload));
          break;
        case "mark":
          player.mark(message.mark.name);
          break;
        case "clear":
          stats.clears++;
          player.clear();
          markInterrupted();
          break;
        case "transcript":
          stats.transcripts++;
          addLine(message.speaker, message.text);
          break;
      }
    };
    socket.onclose = (event) => {
      const hungUp = call !== null && call.hungUp;
      const connected = state === "connected";
      endCall();
      if (hungUp) setStatus("You hung up.");
      else if (connected) setStatus("The bot ended the call.");
      else setStatus(`Could not connect (code ${event.code}): is the server up? If this page is old, reload it.`);
    };
  }

  function endCall() {
    if (call === null) return;
    const { microphone, context, player } = call;
    player.close();
    for (const track of microphone.getTracks()) track.stop();
    context.close();
    call = null;
    setState("ended");
  }

  function hangUp() {
    if (call === null) return;
    call.hungUp = true;
    const { socket, send, ids } = call;
    send({ event: "stop", streamSid: ids.streamSid, stop: { accountSid: ids.accountSid, callSid: ids.callSid } });
    socket.close(1000, "caller hung up");
  }

  callButton.addEventListener("click", () => {
    startCall().catch((error) => {
      endCall();
      setStatus(`The call failed: ${error.message}`);
    });
  });
  hangupButton.addEventListener("click", hangUp);

  window.softphone = {
    get state() {
      return state;
    },
    stats,
    transcript: () =>
      Array.from(document.querySelectorAll("#transcript li"), (item) => ({
        speaker: item.className.split(" ")[0],
        text: item.lastChild.textContent,
        interrupted: item.classList.contains("interrupted"),
      })),
    codec: { encode: (sample) => ENCODE[sample + 32768], decode: (byte) => DECODE[byte] },
  };
})();
