// tracecam field case 7 (lock contention): an inventory service on the JDK's
// HttpServer with a fixed pool of worker threads, where every request takes
// one Java monitor (a synchronized block on the stock table) and one kind of
// request holds it for a long time.
//
//   java e2e/workloads/cases/Inventory.java --port 0 [--bind 127.0.0.1] [--workers 8]
//
// Prints one line once listening:  READY port=<port> pid=<pid>
//
//   GET /stock?sku=N      reads one item's stock inside synchronized (STOCK) {...};
//                         cheap once it has the monitor.
//   GET /restock?ms=300   takes the same monitor and, while holding it, waits
//                         ms for a (simulated) supplier confirmation: the bug,
//                         a slow call made under a lock every request needs.
//   GET /health           takes no lock.
//
// Ground truth, measured by the workload itself, in response headers:
//   X-Tid               the kernel thread id of the worker that served it
//                       (from /proc/thread-self), X-Thread its name
//   X-Lock-Wait-Us      how long it waited to enter the monitor (System.nanoTime)
//   X-Prev-Owner-Tid    the thread that owned the monitor just before this
//   X-Prev-Owner-Name   request did (the one whose exit let it in)
//   X-Held-Us           /restock: how long it held the monitor
//
// Worker threads are named worker-1..N; HotSpot copies the name into the
// kernel's comm, which is what tracecam reports for a thread.

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;

import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.HashMap;
import java.util.Map;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

public class Inventory {
    static final Map<Integer, Integer> STOCK = new HashMap<>();
    // Written only inside synchronized (STOCK).
    static long lastOwnerTid;
    static String lastOwnerName = "";

    static final ThreadLocal<Long> TID = ThreadLocal.withInitial(() -> {
        try {
            // "/proc/thread-self" -> "<pid>/task/<tid>"
            String link = Files.readSymbolicLink(Paths.get("/proc/thread-self")).toString();
            return Long.parseLong(link.substring(link.lastIndexOf('/') + 1));
        } catch (IOException | RuntimeException e) {
            return -1L;
        }
    });

    public static void main(String[] args) throws Exception {
        String bind = "127.0.0.1";
        int port = 0, workers = 8;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--port": port = Integer.parseInt(args[++i]); break;
                case "--bind": bind = args[++i]; break;
                case "--workers": workers = Integer.parseInt(args[++i]); break;
                default:
                    System.err.println("usage: Inventory [--port N] [--bind ADDR] [--workers N]");
                    System.exit(2);
            }
        }
        for (int sku = 0; sku < 1000; sku++) STOCK.put(sku, 100);
        System.setProperty("sun.net.httpserver.nodelay", "true");
        HttpServer server = HttpServer.create(new InetSocketAddress(bind, port), 1024);
        AtomicInteger ids = new AtomicInteger();
        server.setExecutor(Executors.newFixedThreadPool(workers, r -> {
            Thread t = new Thread(r, "worker-" + ids.incrementAndGet());
            t.setDaemon(true);
            return t;
        }));
        server.createContext("/", Inventory::handle);
        server.start();
        System.out.println("READY port=" + server.getAddress().getPort() + " pid=" + ProcessHandle.current().pid());
        System.out.flush();
    }

    static int qint(String rawQuery, String key, int def) {
        if (rawQuery == null) return def;
        for (String kv : rawQuery.split("&")) {
            int i = kv.indexOf('=');
            if (i > 0 && kv.substring(0, i).equals(key)) {
                try {
                    return Integer.parseInt(kv.substring(i + 1));
                } catch (NumberFormatException e) {
                    return def;
                }
            }
        }
        return def;
    }

    static void handle(HttpExchange ex) throws IOException {
        try (InputStream in = ex.getRequestBody()) {
            in.readAllBytes();
        }
        String path = ex.getRequestURI().getPath();
        String q = ex.getRequestURI().getRawQuery();
        long tid = TID.get();
        Map<String, String> h = new HashMap<>();
        h.put("X-Tid", Long.toString(tid));
        h.put("X-Thread", Thread.currentThread().getName());
        String body;
        int code = 200;
        try {
            switch (path) {
                case "/stock": {
                    int sku = qint(q, "sku", 1);
                    long t0 = System.nanoTime();
                    int n;
                    synchronized (STOCK) {
                        long t1 = System.nanoTime();
                        h.put("X-Lock-Wait-Us", Long.toString((t1 - t0) / 1000));
                        h.put("X-Prev-Owner-Tid", Long.toString(lastOwnerTid));
                        h.put("X-Prev-Owner-Name", lastOwnerName);
                        lastOwnerTid = tid;
                        lastOwnerName = Thread.currentThread().getName();
                        n = STOCK.getOrDefault(sku, 0);
                    }
                    body = "sku " + sku + " stock " + n;
                    break;
                }
                case "/restock": {
                    int ms = qint(q, "ms", 300);
                    long t0 = System.nanoTime();
                    synchronized (STOCK) {
                        long t1 = System.nanoTime();
                        h.put("X-Lock-Wait-Us", Long.toString((t1 - t0) / 1000));
                        h.put("X-Prev-Owner-Tid", Long.toString(lastOwnerTid));
                        h.put("X-Prev-Owner-Name", lastOwnerName);
                        lastOwnerTid = tid;
                        lastOwnerName = Thread.currentThread().getName();
                        // The slow part, under the lock: wait for the supplier.
                        Thread.sleep(ms);
                        STOCK.replaceAll((k, v) -> v + 10);
                        h.put("X-Held-Us", Long.toString((System.nanoTime() - t1) / 1000));
                    }
                    body = "restocked";
                    break;
                }
                case "/health":
                    body = "ok";
                    break;
                default:
                    code = 404;
                    body = "not found: " + path;
            }
        } catch (InterruptedException e) {
            code = 500;
            body = "interrupted";
        }
        byte[] b = (body + "\n").getBytes(StandardCharsets.UTF_8);
        ex.getResponseHeaders().set("Content-Type", "text/plain");
        h.forEach((k, v) -> ex.getResponseHeaders().set(k, v));
        ex.sendResponseHeaders(code, b.length);
        try (OutputStream os = ex.getResponseBody()) {
            os.write(b);
        }
        ex.close();
    }
}
