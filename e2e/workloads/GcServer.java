// tracecam e2e workload for the GC case: a JDK HttpServer whose /alloc
// endpoint allocates heavily on a small heap, so stop-the-world collections
// stop the request threads.
//
// Single-file launch (no build step), e.g. with a small heap and SerialGC:
//   java -Xmx64m -XX:+UseSerialGC e2e/workloads/GcServer.java --port 0
//
// Prints one line once listening:  READY port=<port> pid=<pid>
//
// Endpoints (keep-alive, Content-Length):
//   GET /alloc?mb=200&keep=24  allocate mb MiB in 64 KiB arrays while keeping the
//                              last keep MiB reachable (old-generation pressure)
//   GET /fast                  immediate reply
// Every reply carries the ground truth the test compares with:
//   X-GC-Count   collections (all collectors) during the request
//   X-GC-Millis  their accumulated time in ms (GarbageCollectorMXBean)
// Request threads are named worker-1..worker-4.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.OutputStream;
import java.lang.management.GarbageCollectorMXBean;
import java.lang.management.ManagementFactory;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

public class GcServer {
    static final List<GarbageCollectorMXBean> GCS = ManagementFactory.getGarbageCollectorMXBeans();
    static volatile Object sink;

    public static void main(String[] args) throws Exception {
        int port = 0;
        String bind = "127.0.0.1";
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--port": port = Integer.parseInt(args[++i]); break;
                case "--bind": bind = args[++i]; break;
                default:
                    System.err.println("usage: GcServer [--port N] [--bind ADDR]");
                    System.exit(2);
            }
        }
        System.setProperty("sun.net.httpserver.nodelay", "true");
        HttpServer server = HttpServer.create(new InetSocketAddress(bind, port), 1024);
        AtomicInteger ids = new AtomicInteger();
        server.setExecutor(Executors.newFixedThreadPool(4, r -> {
            Thread t = new Thread(r, "worker-" + ids.incrementAndGet());
            t.setDaemon(true);
            return t;
        }));
        server.createContext("/", GcServer::handle);
        server.start();
        System.out.println("READY port=" + server.getAddress().getPort() + " pid=" + ProcessHandle.current().pid());
        System.out.flush();
    }

    static long[] gcTotals() {
        long n = 0, ms = 0;
        for (GarbageCollectorMXBean g : GCS) {
            n += Math.max(0, g.getCollectionCount());
            ms += Math.max(0, g.getCollectionTime());
        }
        return new long[] {n, ms};
    }

    static int param(String query, String name, int def) {
        if (query == null) return def;
        for (String kv : query.split("&")) {
            int i = kv.indexOf('=');
            if (i > 0 && kv.substring(0, i).equals(name)) return Integer.parseInt(kv.substring(i + 1));
        }
        return def;
    }

    static void handle(HttpExchange ex) throws IOException {
        long[] before = gcTotals();
        String path = ex.getRequestURI().getPath();
        String q = ex.getRequestURI().getRawQuery();
        int status = 200;
        String body = "ok\n";
        try {
            if (path.equals("/alloc")) {
                int mb = param(q, "mb", 200), keep = param(q, "keep", 24);
                sink = null; // the previous request's survivors are garbage now
                Object[] kept = new Object[Math.max(1, keep * 16)];
                long sum = 0;
                for (int i = 0; i < mb * 16; i++) {
                    byte[] b = new byte[64 << 10];
                    b[i & 1023] = (byte) i;
                    kept[i % kept.length] = b;
                    sum += b[0];
                }
                sink = kept;
                body = "allocated " + mb + " MiB " + sum + "\n";
            } else if (!path.equals("/fast")) {
                status = 404;
                body = "not found\n";
            }
        } catch (OutOfMemoryError e) {
            status = 500;
            body = "out of memory\n";
        }
        long[] after = gcTotals();
        ex.getResponseHeaders().add("X-GC-Count", Long.toString(after[0] - before[0]));
        ex.getResponseHeaders().add("X-GC-Millis", Long.toString(after[1] - before[1]));
        byte[] out = body.getBytes(StandardCharsets.UTF_8);
        ex.sendResponseHeaders(status, out.length);
        try (OutputStream os = ex.getResponseBody()) {
            os.write(out);
        }
    }
}
