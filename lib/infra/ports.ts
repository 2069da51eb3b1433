/**
 * Small networking helpers shared by the embedded infrastructure (Temporal dev server, s3rver).
 */
import net from 'node:net';

/**
 * Asks the OS for a currently free TCP port on `host` (loopback by default).
 *
 * The port is released before this resolves, so another process can in principle grab it
 * before the caller binds it; callers that spawn servers on it should treat "address already
 * in use" as retryable.
 */
export function findFreePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port: 0, host, exclusive: true }, () => {
      const addr = server.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      server.close((err) => {
        if (err) reject(err);
        else if (!port) reject(new Error(`could not determine a free port on ${host}`));
        else resolve(port);
      });
    });
  });
}

/** Several distinct free ports (distinct from each other at the time of the call). */
export async function findFreePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>();
  for (let attempts = 0; ports.size < count; attempts++) {
    if (attempts > count * 20) throw new Error(`could not find ${count} distinct free ports on ${host}`);
    ports.add(await findFreePort(host));
  }
  return [...ports];
}

/** True when something accepts TCP connections on host:port within timeoutMs. */
export function isPortOpen(port: number, host = '127.0.0.1', timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}
