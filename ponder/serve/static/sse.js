// Server-sent events read from a fetch() body, as the SSE spec parses them:
// blocks separated by a blank line; `event:` names the block, `data:` lines
// join with "\n", lines starting with ":" are comments (keep-alive pings).
// EventSource cannot POST or send an Authorization header, hence this.

/** Parse one block of lines into {event, data}, or null for a comment-only block. */
export function parseBlock(block) {
  let event = "message";
  const data = [];
  for (const line of block.split(/\r\n|\r|\n/)) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { event, data: data.join("\n") } : null;
}

/** Yield {event, data} for every message in a ReadableStream of bytes. */
export async function* readEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer = (buffer + value).replace(/\r\n/g, "\n");
      let end;
      while ((end = buffer.indexOf("\n\n")) >= 0) {
        const message = parseBlock(buffer.slice(0, end));
        buffer = buffer.slice(end + 2);
        if (message) yield message;
      }
    }
    const last = parseBlock(buffer);
    if (last) yield last;
  } finally {
    reader.cancel().catch(() => {});  // leaving early (after [DONE], on stop) closes the connection
  }
}
