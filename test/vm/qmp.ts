// A small QMP client, so tests can hot-add and remove guest memory while a guest runs
// (test/vm/run.sh --qmp PATH).
import net from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';

type QmpReply = { return?: unknown; error?: { class: string; desc: string }; event?: string };

export class Qmp {
  private buffer = '';
  private readonly waiting: ((reply: QmpReply) => void)[] = [];

  private constructor(private readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => {
      this.buffer += chunk;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl).trim();
        this.buffer = this.buffer.slice(nl + 1);
        if (!line) continue;
        const msg = JSON.parse(line) as QmpReply & { QMP?: unknown };
        if (msg.event !== undefined || msg.QMP !== undefined) continue;
        this.waiting.shift()?.(msg);
      }
    });
  }

  /** Connects once QEMU has created the socket (it does so as it starts). */
  static async connect(path: string, timeoutMs = 30_000): Promise<Qmp> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const socket = net.createConnection(path);
      try {
        await once(socket, 'connect');
        const qmp = new Qmp(socket);
        await qmp.execute('qmp_capabilities');
        return qmp;
      } catch (err) {
        socket.destroy();
        if (Date.now() > deadline) throw new Error(`no QMP socket at ${path}: ${String(err)}`);
        await sleep(200);
      }
    }
  }

  /** Runs one command; rejects with QEMU's own description when it fails. */
  execute(command: string, args?: Record<string, unknown>): Promise<unknown> {
    return new Promise((resolve, reject) => {
      this.waiting.push((reply) => {
        if (reply.error) reject(new Error(`QMP ${command}: ${reply.error.class}: ${reply.error.desc}`));
        else resolve(reply.return);
      });
      this.socket.write(`${JSON.stringify(args ? { execute: command, arguments: args } : { execute: command })}\n`);
    });
  }

  close(): void {
    this.socket.end();
  }
}
