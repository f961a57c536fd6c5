// lib.mjs — raw-socket exchanges for the edge tests.

import net from 'node:net';

// Writes `request` (a string, sent as latin1 so NUL and CR go out as is) on a fresh
// connection and collects what comes back until the server closes it, or until `untilAnswers`
// complete-looking answers arrived (then we close), or `ms` passed. Resolves {text, statuses,
// closedByServer}.
export function rawExchange(port, request, { ms = 3000, untilAnswers = 0 } = {}) {
  return new Promise((resolve) => {
    const sock = net.connect(port, '127.0.0.1');
    let text = '';
    let done = false;
    const statuses = () => text.match(/HTTP\/1\.[01] \d{3}[^\r]*/g) ?? [];
    const finish = (closedByServer) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      resolve({ text, statuses: statuses(), closedByServer });
    };
    const timer = setTimeout(() => finish(false), ms);
    sock.on('data', (d) => {
      text += d.toString('latin1');
      // an answer is complete once its JSON closes; close enough for a count
      if (untilAnswers && statuses().length >= untilAnswers && /\}\s*$/.test(text)) setTimeout(() => finish(false), 50);
    });
    sock.on('error', () => finish(true));
    sock.on('end', () => finish(true));
    sock.on('close', () => finish(true));
    sock.write(Buffer.from(request, 'latin1'));
  });
}
