#!/usr/bin/env node
// tracecam e2e workload: a Node.js `http` server — one event loop thread
// serving every request — whose endpoints spend their time in one known way
// each, so the profiler's event-loop accounting can be checked against what
// the request did.
//
//   node nodeserver.js --port 0 [--bind 127.0.0.1] [--data-dir DIR] [--downstream HOST:PORT]
//
// Prints `READY port=<port> pid=<pid>` once listening, and after each request
// that carried a traceparent has been answered, the loop thread's own account
// of it (see truth.py for the format):
//
//   TRUTH trace=<id> tid=<tid> cpu_ns=<CPU the request's own callbacks ran>
//         runq_ns=<the thread's run delay during them> wall_ns=<request start
//         to response end> loop_cpu_ns=<the thread's CPU over the whole
//         request, from schedstat>
//
// cpu_ns sums the thread's CPU clock (schedstat) across this request's own
// callbacks only: on an event loop the thread's CPU over a request's lifetime
// includes other requests' callbacks.
//
// Endpoints:
//   GET /cpu?ms=200         burn ~ms of the loop thread's CPU in one callback
//   GET /sleep?ms=200       setTimeout
//   GET /downstream?ms=200  TCP round trip to --downstream (slowserver.py)
//   GET /fsync?n=10&kb=16   n x (write + fsync), synchronously on the loop
//   GET /fast               immediate reply
'use strict';

const http = require('http');
const net = require('net');
const fs = require('fs');
const path = require('path');

const args = process.argv.slice(2);
function arg(name, def) {
  const i = args.indexOf('--' + name);
  return i >= 0 && i + 1 < args.length ? args[i + 1] : def;
}
const port = parseInt(arg('port', '0'), 10);
const bind = arg('bind', '127.0.0.1');
const dataDir = arg('data-dir', fs.mkdtempSync('/tmp/nodeserver-'));
const downstream = arg('downstream', '');

// The loop thread's CPU clock and run delay, ns, from the scheduler's own
// statistics (Node 20 has no per-thread CPU clock API).
function schedstat() {
  try {
    const f = fs.readFileSync('/proc/thread-self/schedstat', 'utf8').trim().split(' ');
    return [BigInt(f[0]), BigInt(f[1])];
  } catch (e) {
    return [-1n, -1n];
  }
}
const tid = (() => {
  try {
    return path.basename(fs.realpathSync('/proc/thread-self'));
  } catch (e) {
    return '-1';
  }
})();

// Runs fn, adding the CPU it used and the time the thread waited for a CPU
// meanwhile to st: a request's own callback.
function own(st, fn) {
  const [c, r] = schedstat();
  try {
    return fn();
  } finally {
    const [c2, r2] = schedstat();
    st.cpu += c2 - c;
    st.runq += r2 - r;
  }
}

function traceOf(req) {
  const tp = req.headers['traceparent'] || '';
  const p = tp.split('-');
  return p.length >= 2 && p[1].length === 32 ? p[1] : null;
}

function reply(req, res, st, code, text) {
  own(st, () => {
    const body = text + '\n';
    res.writeHead(code, {'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body)});
    res.end(body);
  });
  const trace = traceOf(req);
  if (trace) {
    const wall = process.hrtime.bigint() - st.t0;
    const loopCPU = schedstat()[0] - st.cpu0;
    process.stdout.write(`TRUTH trace=${trace} tid=${tid} cpu_ns=${st.cpu} runq_ns=${st.runq} wall_ns=${wall} loop_cpu_ns=${loopCPU}\n`);
  }
}

function burn(ms) {
  const until = schedstat()[0] + BigInt(ms) * 1000000n;
  let x = 0;
  for (;;) {
    for (let i = 0; i < 20000; i++) x = (x * 31 + i) & 0xffffffff;
    if (schedstat()[0] >= until) return x;
  }
}

function qint(u, k, def) {
  const v = parseInt(u.searchParams.get(k), 10);
  return Number.isFinite(v) ? v : def;
}

const server = http.createServer((req, res) => {
  const st = {t0: process.hrtime.bigint(), cpu: 0n, runq: 0n, cpu0: schedstat()[0]};
  own(st, () => {
    const u = new URL(req.url, 'http://x');
    switch (u.pathname) {
      case '/cpu': {
        const ms = qint(u, 'ms', 200);
        burn(ms);
        setImmediate(() => reply(req, res, st, 200, `cpu ms=${ms}`));
        return;
      }
      case '/sleep': {
        const ms = qint(u, 'ms', 200);
        setTimeout(() => reply(req, res, st, 200, `sleep ms=${ms}`), ms);
        return;
      }
      case '/downstream': {
        const ms = qint(u, 'ms', 200);
        const [h, p] = downstream.split(':');
        const c = net.connect({host: h, port: parseInt(p, 10)}, () => own(st, () => c.write(`${ms}\n`)));
        let got = '';
        c.on('data', (b) => own(st, () => {
          got += b.toString();
          if (got.includes('\n')) {
            c.destroy();
            reply(req, res, st, 200, `downstream ms=${ms} reply=${got.trim()}`);
          }
        }));
        c.on('error', (e) => reply(req, res, st, 502, `downstream error ${e.message}`));
        return;
      }
      case '/fsync': {
        const n = qint(u, 'n', 10), kb = qint(u, 'kb', 16);
        const buf = Buffer.alloc(kb * 1024, 'x');
        const fd = fs.openSync(path.join(dataDir, 'fsync.log'), 'a');
        try {
          for (let i = 0; i < n; i++) {
            fs.writeSync(fd, buf);
            fs.fsyncSync(fd);
          }
        } finally {
          fs.closeSync(fd);
        }
        reply(req, res, st, 200, `fsync n=${n} kb=${kb}`);
        return;
      }
      case '/fast':
        reply(req, res, st, 200, 'fast');
        return;
      default:
        reply(req, res, st, 404, 'not found');
    }
  });
});
server.keepAliveTimeout = 5000;
server.listen(port, bind, () => {
  process.stdout.write(`READY port=${server.address().port} pid=${process.pid}\n`);
});
