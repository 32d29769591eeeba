// A plain SMTP server for the browser tests (no TLS, no authentication): on 127.0.0.1, it
// speaks enough of RFC 5321 for Gatehouse's mailer (greeting, EHLO/HELO, MAIL, RCPT, DATA,
// RSET, NOOP, QUIT) and keeps every message it accepts, so a test can read the code a mail
// carries. The server is pointed at it with GATEHOUSE_SMTP_URL=smtp://127.0.0.1:PORT.

import { createServer } from "node:net";

/**
 * Starts the sink. Resolves to {url, mails, codeFor(to, subject), stop()}; each mail is
 * {from, to: [addresses], data (headers and body as sent, dot-unstuffed)}.
 */
export async function startSmtpSink() {
  const mails = [];
  const sockets = new Set();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on("close", () => sockets.delete(socket));
    socket.on("error", () => {});
    socket.setEncoding("utf8");
    const reply = (text) => socket.write(`${text}\r\n`);
    let buffered = "";
    let from = null;
    let to = [];
    let data = null; // the lines of a message while DATA lasts
    reply("220 sink.test ESMTP ready");
    socket.on("data", (chunk) => {
      buffered += chunk;
      for (let end = buffered.indexOf("\r\n"); end >= 0; end = buffered.indexOf("\r\n")) {
        const line = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        if (data) {
          if (line === ".") {
            mails.push({ from, to, data: data.join("\r\n") });
            data = null;
            from = null;
            to = [];
            reply(`250 2.0.0 queued as ${mails.length}`);
          } else {
            data.push(line.startsWith(".") ? line.slice(1) : line);
          }
          continue;
        }
        const upper = line.toUpperCase();
        if (upper.startsWith("EHLO")) {
          reply("250-sink.test\r\n250-8BITMIME\r\n250 SMTPUTF8");
        } else if (upper.startsWith("HELO")) {
          reply("250 sink.test");
        } else if (upper.startsWith("MAIL FROM:")) {
          from = address(line.slice(10));
          to = [];
          reply("250 OK");
        } else if (upper.startsWith("RCPT TO:")) {
          to.push(address(line.slice(8)));
          reply("250 OK");
        } else if (upper === "DATA") {
          if (from === null || to.length === 0) {
            reply("503 5.5.1 MAIL and RCPT first");
          } else {
            data = [];
            reply("354 end with <CRLF>.<CRLF>");
          }
        } else if (upper === "RSET") {
          from = null;
          to = [];
          reply("250 OK");
        } else if (upper.startsWith("NOOP")) {
          reply("250 OK");
        } else if (upper === "QUIT") {
          reply("221 bye");
          socket.end();
        } else {
          reply("502 5.5.2 command not implemented");
        }
      }
    });
  });
  await new Promise((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const url = `smtp://127.0.0.1:${server.address().port}`;
  return {
    url,
    mails,
    /** The mails to `to` whose subject is `subject`, oldest first. */
    to(address, subject) {
      return mails.filter((m) => m.to.includes(address) && header(m.data, "subject") === subject);
    },
    /** The code ("ABCD-EFGH") of the newest mail to `to` with `subject`, or null. */
    codeFor(address, subject) {
      const found = this.to(address, subject).at(-1);
      return found ? codeIn(found) : null;
    },
    stop() {
      for (const socket of sockets) socket.destroy();
      server.close();
    },
  };
}

/** The address of `<a@b>` (and any parameters after it) or of a bare one. */
function address(text) {
  const bracketed = /<([^>]*)>/.exec(text);
  return (bracketed ? bracketed[1] : text.trim().split(/\s/)[0]).toLowerCase();
}

/** The value of header `name` (the first, unfolded), or "". */
export function header(data, name) {
  const head = data.split("\r\n\r\n")[0].replace(/\r\n[ \t]+/g, " ");
  const prefix = `${name.toLowerCase()}:`;
  const line = head.split("\r\n").find((l) => l.toLowerCase().startsWith(prefix));
  return line ? line.slice(prefix.length).trim() : "";
}

/** The body of a mail, decoded from its transfer encoding (quoted-printable, base64 or none). */
export function body(data) {
  const at = data.indexOf("\r\n\r\n");
  const raw = at < 0 ? "" : data.slice(at + 4);
  const encoding = header(data, "content-transfer-encoding").toLowerCase();
  let bytes;
  if (encoding === "quoted-printable") {
    // Soft line breaks ("=" at a line's end) join lines; "=XX" is one byte.
    const joined = raw.replace(/=\r?\n/g, "");
    const out = [];
    for (let i = 0; i < joined.length; i++) {
      const hex = joined.slice(i + 1, i + 3);
      if (joined[i] === "=" && /^[0-9A-Fa-f]{2}$/.test(hex)) {
        out.push(parseInt(hex, 16));
        i += 2;
      } else {
        out.push(...Buffer.from(joined[i], "utf8"));
      }
    }
    bytes = Buffer.from(out);
  } else if (encoding === "base64") {
    bytes = Buffer.from(raw.replace(/\s+/g, ""), "base64");
  } else {
    bytes = Buffer.from(raw, "utf8");
  }
  return bytes.toString("utf8").replace(/\r\n/g, "\n");
}

/** The code a mail carries ("Your code: ABCD-EFGH"), or null. */
export function codeIn(mail) {
  const found = /Your code: ([0-9A-Z]{4}-[0-9A-Z]{4})/.exec(body(mail.data));
  return found ? found[1] : null;
}
