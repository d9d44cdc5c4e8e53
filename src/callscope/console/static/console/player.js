/* callscope call player: waveform from the recording's peaks, playback position on the
 * waveform, the call's phase bar and the SIP ladder, and a caller/callee balance control
 * (Web Audio channel splitter). Our own code; no third-party library.
 *
 * Peaks (Recording.peaks) are bytes 0..255, channel-major: every caller bucket, then every
 * callee bucket. The recording's time 0 is the call's INVITE (see callscope.audio.timeline),
 * the same origin as the ladder rows' data-t offsets.
 */
(function () {
  "use strict";
  var player = document.getElementById("player");
  if (!player) { return; }
  var audio = document.getElementById("audio");
  var canvas = document.getElementById("waveform");
  var balance = document.getElementById("balance");
  var channels = parseInt(player.dataset.channels || "2", 10) || 1;
  var peaks = decodePeaks(player.dataset.peaks || "", channels);
  var duration = parseFloat(player.dataset.duration || "0") || 0;

  function decodePeaks(text, count) {
    var raw = window.atob(text);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    var per = Math.floor(bytes.length / count);
    var result = [];
    for (var c = 0; c < count; c++) { result.push(bytes.subarray(c * per, (c + 1) * per)); }
    return result;
  }

  function length() {
    return (isFinite(audio.duration) && audio.duration > 0) ? audio.duration : duration;
  }

  /* -- waveform -------------------------------------------------------------------- */
  function resize() {
    var ratio = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, Math.round(canvas.clientWidth * ratio));
    canvas.height = Math.max(1, Math.round(canvas.clientHeight * ratio));
    draw();
  }

  function draw() {
    var ctx = canvas.getContext("2d");
    var w = canvas.width, h = canvas.height, mid = h / 2;
    var played = length() ? (audio.currentTime / length()) * w : 0;
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = "#f0f3f7";
    ctx.fillRect(0, 0, w, h);
    for (var c = 0; c < Math.min(2, peaks.length); c++) {
      var data = peaks[c];
      if (!data.length) { continue; }
      for (var x = 0; x < w; x++) {
        var from = Math.floor(x / w * data.length);
        var to = Math.max(from + 1, Math.floor((x + 1) / w * data.length));
        var top = 0;
        for (var i = from; i < to && i < data.length; i++) { if (data[i] > top) { top = data[i]; } }
        var bar = Math.max(1, Math.sqrt(top / 255) * (mid - 2));
        ctx.fillStyle = x < played ? (c === 0 ? "#0b5cad" : "#9a4b00") : (c === 0 ? "#8fb3d9" : "#d9b38f");
        if (c === 0) { ctx.fillRect(x, mid - bar, 1, bar); } else { ctx.fillRect(x, mid, 1, bar); }
      }
    }
    ctx.fillStyle = "#1d2330";
    ctx.fillRect(0, mid, w, 1);
    if (length()) {
      ctx.fillStyle = "#b3261e";
      ctx.fillRect(Math.min(w - 2, played), 0, 2, h);
    }
  }

  function seekTo(seconds) {
    var total = length();
    if (!total) { return; }
    audio.currentTime = Math.max(0, Math.min(total, seconds));
  }

  canvas.tabIndex = 0;
  canvas.addEventListener("click", function (event) {
    var rect = canvas.getBoundingClientRect();
    seekTo((event.clientX - rect.left) / rect.width * length());
  });
  canvas.addEventListener("keydown", function (event) {
    if (event.key === "ArrowRight") { seekTo(audio.currentTime + 5); event.preventDefault(); }
    if (event.key === "ArrowLeft") { seekTo(audio.currentTime - 5); event.preventDefault(); }
    if (event.key === " ") { if (audio.paused) { audio.play(); } else { audio.pause(); } event.preventDefault(); }
  });

  /* -- position on the phase bar and the ladder ------------------------------------ */
  var phasebar = document.getElementById("phasebar");
  var phaseHead = document.getElementById("phase-playhead");
  var ladderHead = document.getElementById("ladder-playhead");
  var rows = [];
  document.querySelectorAll("#ladder g.msg").forEach(function (g) {
    if (g.dataset.t !== "") { rows.push({ t: parseFloat(g.dataset.t), y: parseFloat(g.dataset.y), g: g }); }
  });

  function ladderY(t) {
    if (!rows.length) { return null; }
    if (t <= rows[0].t) { return rows[0].y; }
    for (var i = 0; i + 1 < rows.length; i++) {
      var a = rows[i], b = rows[i + 1];
      if (t < b.t) { return b.t > a.t ? a.y + (t - a.t) / (b.t - a.t) * (b.y - a.y) : a.y; }
    }
    return rows[rows.length - 1].y;
  }

  function mark() {
    var t = audio.currentTime;
    if (phasebar && phaseHead) {
      var total = parseFloat(phasebar.dataset.total || "0");
      if (total > 0) {
        phaseHead.hidden = false;
        phaseHead.style.left = Math.min(100, t / total * 100) + "%";
      }
    }
    if (ladderHead) {
      var y = ladderY(t);
      if (y !== null) {
        ladderHead.removeAttribute("hidden");
        ladderHead.setAttribute("y1", y);
        ladderHead.setAttribute("y2", y);
      }
      rows.forEach(function (row) { row.g.classList.toggle("passed", row.t <= t); });
    }
    player.dataset.position = t.toFixed(2);
    draw();
  }

  audio.addEventListener("timeupdate", mark);
  audio.addEventListener("seeked", mark);
  audio.addEventListener("loadedmetadata", draw);
  window.addEventListener("resize", resize);

  /* -- caller/callee balance ------------------------------------------------------- */
  var graph = null;

  function buildGraph() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (graph || !Context) { return graph; }
    var ctx = new Context();
    var source = ctx.createMediaElementSource(audio);
    var split = ctx.createChannelSplitter(2);
    var merge = ctx.createChannelMerger(2);
    var caller = ctx.createGain(), callee = ctx.createGain();
    source.connect(split);
    split.connect(caller, 0);
    split.connect(callee, 1);
    caller.connect(merge, 0, 0);
    callee.connect(merge, 0, 1);
    merge.connect(ctx.destination);
    graph = { ctx: ctx, caller: caller, callee: callee };
    applyBalance();
    return graph;
  }

  function applyBalance() {
    if (!graph) { return; }
    var v = parseFloat(balance.value);
    graph.caller.gain.value = v > 0 ? 1 - v : 1;
    graph.callee.gain.value = v < 0 ? 1 + v : 1;
  }

  audio.addEventListener("play", function () {
    var g = buildGraph();
    if (g && g.ctx.state === "suspended") { g.ctx.resume(); }
  });
  balance.addEventListener("input", function () { buildGraph(); applyBalance(); });

  resize();
})();
