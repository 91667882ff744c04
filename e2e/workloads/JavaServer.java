// tracecam e2e workload: JDK com.sun.net.httpserver server on a fixed pool of 4 threads
// (--workers N). Every reply carries X-Handled-Us: the handler's own time, so
// a client can tell waiting for a worker from being served.
//
// Single-file launch, no build step:
//   java e2e/workloads/JavaServer.java --port 0 --bind 127.0.0.1 --data-dir /var/tmp/tc \
//        [--downstream 127.0.0.1:9001] [--dns-server 127.0.0.1:5353] [--workers 4]
//
// Prints exactly one line to stdout once listening:
//   READY port=<port> pid=<pid>
//
// Endpoints (same semantics as pyserver.py; always Content-Length, keep-alive):
//   GET  /cpu?ms=200          CPU burn for ~ms of thread CPU time
//   GET  /sleep?ms=150        Thread.sleep
//   GET  /fsync?n=20&kb=64    n x (write kb KiB to DATA_DIR/fsync.log + fsync via FileChannel.force(true))
//   GET  /lock?ms=200         block (LockSupport.park -> futex) on a ReentrantLock held ~ms by "lock-holder"
//   GET  /downstream?ms=200   TCP round trip to --downstream (slowserver.py)
//   GET  /dns?name=x&server=h:p  UDP DNS A query, replies with the rcode
//   GET  /fast                immediate reply
//   GET  /status/NNN          reply with status NNN
//   POST /echo                read the body, reply with its length
//
// Request threads are named worker-1..worker-4; HotSpot copies Java thread
// names into the kernel comm (/proc/<pid>/task/<tid>/comm) on Linux.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.OutputStream;
import java.lang.management.ManagementFactory;
import java.lang.management.ThreadMXBean;
import java.net.DatagramPacket;
import java.net.DatagramSocket;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.net.URLDecoder;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ThreadLocalRandom;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.locks.ReentrantLock;

public class JavaServer {
    static final long MAX_FSYNC_LOG = 64L << 20;
    static final ReentrantLock LOCK = new ReentrantLock();
    static final ThreadMXBean TMX = ManagementFactory.getThreadMXBean();
    static volatile long sink;

    static Path dataDir;
    static int workers = 4;
    // When the handler started on the current request: replies carry the
    // handler's time (X-Handled-Us), so a client can tell its wait for a
    // worker from the work.
    static final ThreadLocal<Long> HANDLER_START = ThreadLocal.withInitial(System::nanoTime);
    static InetSocketAddress downstream;
    static String dnsServer = "127.0.0.1:5353";

    public static void main(String[] args) throws Exception {
        String bind = "127.0.0.1";
        int port = 0;
        String data = null;
        for (int i = 0; i < args.length; i++) {
            String a = args[i];
            String v = (i + 1 < args.length) ? args[i + 1] : null;
            switch (a) {
                case "--port": port = Integer.parseInt(v); i++; break;
                case "--bind": bind = v; i++; break;
                case "--data-dir": data = v; i++; break;
                case "--downstream": downstream = hostPort(v); i++; break;
                case "--dns-server": dnsServer = v; i++; break;
                case "--workers": workers = Integer.parseInt(v); i++; break;
                default:
                    System.err.println("usage: JavaServer [--port N] [--bind ADDR] [--data-dir DIR] "
                            + "[--downstream HOST:PORT] [--dns-server HOST:PORT] [--workers N]");
                    System.exit(2);
            }
        }
        dataDir = (data != null) ? Paths.get(data) : Files.createTempDirectory("javaserver-");
        Files.createDirectories(dataDir);

        // Without this the JDK server writes headers and body in separate small
        // segments and keep-alive requests can stall on Nagle + delayed ACK.
        System.setProperty("sun.net.httpserver.nodelay", "true");

        HttpServer server = HttpServer.create(new InetSocketAddress(bind, port), 1024);
        AtomicInteger ids = new AtomicInteger();
        ExecutorService pool = Executors.newFixedThreadPool(workers, r -> {
            Thread t = new Thread(r, "worker-" + ids.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        server.setExecutor(pool);
        server.createContext("/", JavaServer::handle);
        server.start();

        System.out.println("READY port=" + server.getAddress().getPort()
                + " pid=" + ProcessHandle.current().pid());
        System.out.flush();
    }

    static InetSocketAddress hostPort(String s) {
        int i = s.lastIndexOf(':');
        String host = i > 0 ? s.substring(0, i) : "127.0.0.1";
        return new InetSocketAddress(host, Integer.parseInt(s.substring(i + 1)));
    }

    static Map<String, String> query(String raw) {
        Map<String, String> m = new HashMap<>();
        if (raw == null) return m;
        for (String kv : raw.split("&")) {
            if (kv.isEmpty()) continue;
            int i = kv.indexOf('=');
            String k = i >= 0 ? kv.substring(0, i) : kv;
            String v = i >= 0 ? kv.substring(i + 1) : "";
            m.putIfAbsent(URLDecoder.decode(k, StandardCharsets.UTF_8), URLDecoder.decode(v, StandardCharsets.UTF_8));
        }
        return m;
    }

    static int qint(Map<String, String> q, String k, int def) {
        try {
            return q.containsKey(k) ? Integer.parseInt(q.get(k)) : def;
        } catch (NumberFormatException e) {
            return def;
        }
    }

    static void reply(HttpExchange ex, int code, String text) throws IOException {
        String tp = ex.getRequestHeaders().getFirst("traceparent");
        if (tp != null) text += " traceparent=" + tp;
        byte[] body = (text + "\n").getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "text/plain");
        ex.getResponseHeaders().set("X-Handled-Us", Long.toString((System.nanoTime() - HANDLER_START.get()) / 1000));
        boolean noBody = code == 204 || code == 304 || "HEAD".equals(ex.getRequestMethod());
        if (noBody) {
            ex.sendResponseHeaders(code, -1);
        } else {
            ex.sendResponseHeaders(code, body.length); // exact length -> Content-Length, never chunked
            try (OutputStream os = ex.getResponseBody()) {
                os.write(body);
            }
        }
    }

    /** The calling thread's CPU clock, run delay (schedstat; -1 if unreadable) and monotonic time, ns. */
    static long[] clocks() {
        long runq = -1;
        try {
            String[] f = new String(Files.readAllBytes(Paths.get("/proc/thread-self/schedstat")), StandardCharsets.US_ASCII).trim().split(" ");
            runq = Long.parseLong(f[1]);
        } catch (IOException | RuntimeException e) {
            runq = -1;
        }
        return new long[] {TMX.getCurrentThreadCpuTime(), runq, System.nanoTime()};
    }

    /**
     * The ground truth of a traced request, once its response is written (see truth.py):
     * TRUTH trace=... tid=... cpu_ns=... runq_ns=... wall_ns=..., from the handler's start.
     */
    static void emitTruth(String traceparent, long[] start) {
        if (traceparent == null) return;
        String[] parts = traceparent.split("-");
        if (parts.length < 2 || parts[1].length() != 32) return;
        long[] end = clocks();
        long tid = -1;
        try {
            tid = Long.parseLong(Paths.get("/proc/thread-self").toRealPath().getFileName().toString());
        } catch (IOException | RuntimeException e) {
            tid = -1;
        }
        long runq = (start[1] >= 0 && end[1] >= 0) ? end[1] - start[1] : -1;
        String line = "TRUTH trace=" + parts[1] + " tid=" + tid + " cpu_ns=" + (end[0] - start[0])
                + " runq_ns=" + runq + " wall_ns=" + (end[2] - start[2]);
        synchronized (System.out) {
            System.out.println(line);
            System.out.flush();
        }
    }

    static void handle(HttpExchange ex) throws IOException {
        long[] truthStart = clocks();
        HANDLER_START.set(System.nanoTime());
        try {
            // Drain any request body so the connection stays reusable.
            long bodyLen = 0;
            try (InputStream in = ex.getRequestBody()) {
                byte[] buf = new byte[65536];
                int n;
                while ((n = in.read(buf)) > 0) bodyLen += n;
            }
            String method = ex.getRequestMethod();
            String path = ex.getRequestURI().getPath();
            Map<String, String> q = query(ex.getRequestURI().getRawQuery());
            try {
                if ("POST".equals(method)) {
                    if (path.equals("/echo")) reply(ex, 200, "echo len=" + bodyLen);
                    else reply(ex, 404, "not found: " + path);
                    return;
                }
                switch (path) {
                    case "/cpu": {
                        int ms = qint(q, "ms", 200);
                        double used = burnCpu(ms);
                        reply(ex, 200, String.format("cpu ms=%d thread_cpu_ms=%.1f", ms, used));
                        return;
                    }
                    case "/sleep": {
                        int ms = qint(q, "ms", 150);
                        Thread.sleep(ms);
                        reply(ex, 200, "sleep ms=" + ms);
                        return;
                    }
                    case "/fsync": {
                        int n = qint(q, "n", 20), kb = qint(q, "kb", 64);
                        doFsync(dataDir.resolve("fsync.log"), n, kb);
                        reply(ex, 200, "fsync n=" + n + " kb=" + kb);
                        return;
                    }
                    case "/lock": {
                        int ms = qint(q, "ms", 200);
                        double waited = doLock(ms);
                        reply(ex, 200, String.format("lock ms=%d waited_ms=%.1f", ms, waited));
                        return;
                    }
                    case "/downstream": {
                        int ms = qint(q, "ms", 200);
                        if (downstream == null) {
                            reply(ex, 503, "downstream not configured (--downstream HOST:PORT)");
                            return;
                        }
                        reply(ex, 200, "downstream ms=" + ms + " reply='" + doDownstream(ms) + "'");
                        return;
                    }
                    case "/dns": {
                        String name = q.getOrDefault("name", "foo.example");
                        InetSocketAddress srv = hostPort(q.getOrDefault("server", dnsServer));
                        int[] r;
                        try {
                            r = doDns(name, srv);
                        } catch (SocketTimeoutException e) {
                            reply(ex, 504, "dns name=" + name + " timeout");
                            return;
                        }
                        reply(ex, 200, "dns name=" + name + " rcode=" + r[0] + " answers=" + r[1]);
                        return;
                    }
                    case "/fast":
                        reply(ex, 200, "fast");
                        return;
                    default:
                        if (path.startsWith("/status/")) {
                            int code;
                            try {
                                code = Integer.parseInt(path.substring("/status/".length()));
                            } catch (NumberFormatException e) {
                                code = 0;
                            }
                            if (code < 200 || code > 599) reply(ex, 400, "bad status code");
                            else reply(ex, code, "status " + code);
                            return;
                        }
                        reply(ex, 404, "not found: " + path);
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                reply(ex, 500, "interrupted");
            } catch (IOException e) {
                reply(ex, 500, "error: " + e);
            }
        } finally {
            ex.close();
            emitTruth(ex.getRequestHeaders().getFirst("traceparent"), truthStart);
        }
    }

    /** Spin until this thread has used ~ms of CPU time; checks the clock every ~100k iterations. */
    static double burnCpu(int ms) {
        long start = TMX.getCurrentThreadCpuTime();
        long deadline = start + ms * 1_000_000L;
        long x = 0;
        long now;
        do {
            for (int i = 0; i < 100_000; i++) x = (x * 31 + i) & 0xFFFFFFFFL;
            sink = x;
            now = TMX.getCurrentThreadCpuTime();
        } while (now < deadline);
        return (now - start) / 1e6;
    }

    static void doFsync(Path p, int n, int kb) throws IOException {
        byte[] b = new byte[kb * 1024];
        java.util.Arrays.fill(b, (byte) 'x');
        try (FileChannel ch = FileChannel.open(p, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.APPEND)) {
            if (ch.size() > MAX_FSYNC_LOG) ch.truncate(0);
            for (int i = 0; i < n; i++) {
                ByteBuffer bb = ByteBuffer.wrap(b);
                while (bb.hasRemaining()) ch.write(bb);
                ch.force(true); // fsync(2)
            }
        }
    }

    static double doLock(int ms) throws InterruptedException {
        CountDownLatch held = new CountDownLatch(1);
        Thread holder = new Thread(() -> {
            LOCK.lock();
            try {
                held.countDown();
                Thread.sleep(ms);
            } catch (InterruptedException ignored) {
            } finally {
                LOCK.unlock();
            }
        }, "lock-holder");
        holder.setDaemon(true);
        holder.start();
        held.await(2, TimeUnit.SECONDS);
        Thread.sleep(20); // holder definitely owns the lock now
        long t0 = System.nanoTime();
        LOCK.lock(); // contended -> LockSupport.park -> futex(FUTEX_WAIT)
        double waited = (System.nanoTime() - t0) / 1e6;
        LOCK.unlock();
        holder.join();
        return waited;
    }

    static String doDownstream(int ms) throws IOException {
        // No SO_TIMEOUT: with a timeout the JDK socket goes non-blocking and waits in
        // poll(); without one the worker blocks directly in connect()/read().
        try (Socket s = new Socket()) {
            s.connect(downstream);
            s.getOutputStream().write((ms + "\n").getBytes(StandardCharsets.US_ASCII));
            s.getOutputStream().flush();
            BufferedReader r = new BufferedReader(new InputStreamReader(s.getInputStream(), StandardCharsets.US_ASCII));
            String line = r.readLine();
            return line == null ? "" : line.trim();
        }
    }

    /** Returns {rcode, ancount}. */
    static int[] doDns(String name, InetSocketAddress server) throws IOException {
        int qid = ThreadLocalRandom.current().nextInt(0x10000);
        ByteBuffer q = ByteBuffer.allocate(512);
        q.putShort((short) qid).putShort((short) 0x0100).putShort((short) 1)
                .putShort((short) 0).putShort((short) 0).putShort((short) 0);
        for (String label : name.split("\\.")) {
            if (label.isEmpty()) continue;
            byte[] lb = label.getBytes(StandardCharsets.US_ASCII);
            q.put((byte) lb.length).put(lb);
        }
        q.put((byte) 0).putShort((short) 1).putShort((short) 1);
        try (DatagramSocket s = new DatagramSocket()) {
            s.setSoTimeout(2000);
            s.connect(server);
            s.send(new DatagramPacket(q.array(), q.position()));
            byte[] buf = new byte[4096];
            long deadline = System.nanoTime() + 2_000_000_000L;
            while (true) {
                DatagramPacket p = new DatagramPacket(buf, buf.length);
                s.receive(p);
                if (p.getLength() >= 12) {
                    ByteBuffer r = ByteBuffer.wrap(buf, 0, p.getLength());
                    int rid = r.getShort(0) & 0xFFFF, flags = r.getShort(2) & 0xFFFF, an = r.getShort(6) & 0xFFFF;
                    if (rid == qid && (flags & 0x8000) != 0) return new int[]{flags & 0xF, an};
                }
                if (System.nanoTime() > deadline) throw new SocketTimeoutException("dns: no matching reply");
            }
        }
    }
}
