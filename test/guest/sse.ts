// A server-sent-events client for the guest tests: reads a stream with fetch() and hands
// each frame's event name and data to a callback until closed.

/** Reads the SSE stream at @p url, calling @p onFrame(event, data) per frame; close() ends it. */
export function readSse(url: string, headers: Record<string, string>,
  onFrame: (event: string, data: string) => void): { close(): Promise<void> } {
  const ac = new AbortController();
  const done = (async () => {
    const res = await fetch(url, { headers, signal: ac.signal });
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = '';
    for (;;) {
      const { value, done: end } = await reader.read();
      if (end) return;
      buf += dec.decode(value, { stream: true });
      let i;
      while ((i = buf.indexOf('\n\n')) >= 0) {
        const frame = buf.slice(0, i);
        buf = buf.slice(i + 2);
        const data = /^data: (.*)$/m.exec(frame)?.[1];
        if (data !== undefined) onFrame(/^event: (.*)$/m.exec(frame)?.[1] ?? 'message', data);
      }
    }
  })().catch(() => undefined);
  return { async close() { ac.abort(); await done; } };
}
