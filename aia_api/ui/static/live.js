// One WebSocket follows every task on the page (/v1/ws, authenticated by the
// session cookie). It reconnects by itself, and follows again from the last
// event seen of each task, so nothing is missed while it was away.

const TERMINAL = new Set(["succeeded", "failed", "cancelled"]);

export class Live {
  constructor(onEvent, onState) {
    this.onEvent = onEvent;
    this.onState = onState;
    this.followed = new Map(); // task id -> last seq seen
    this.finished = new Set();
    this.socket = null;
    this.retryMs = 1000;
    this.stopped = true;
  }

  start() {
    this.stopped = false;
    this.connect();
  }

  stop() {
    this.stopped = true;
    this.followed.clear();
    this.finished.clear();
    if (this.socket) this.socket.close(1000);
    this.socket = null;
  }

  follow(taskId, seq = 0) {
    if (this.followed.has(taskId) || this.finished.has(taskId)) return;
    this.followed.set(taskId, seq);
    this.send({ action: "subscribe", task_id: taskId, after: seq });
  }

  send(command) {
    if (this.socket && this.socket.readyState === WebSocket.OPEN) {
      this.socket.send(JSON.stringify(command));
    }
  }

  connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/v1/ws`);
    this.socket = socket;
    socket.addEventListener("open", () => {
      this.retryMs = 1000;
      this.onState("live");
      for (const [taskId, seq] of this.followed) {
        socket.send(JSON.stringify({ action: "subscribe", task_id: taskId, after: seq }));
      }
    });
    socket.addEventListener("message", (message) => {
      let data;
      try {
        data = JSON.parse(message.data);
      } catch (err) {
        return;
      }
      if (data.type !== "event") return;
      const seen = this.followed.get(data.task_id) || 0;
      if (data.seq <= seen) return;
      this.followed.set(data.task_id, data.seq);
      if (TERMINAL.has(data.status)) {
        this.followed.delete(data.task_id);
        this.finished.add(data.task_id);
        this.send({ action: "unsubscribe", task_id: data.task_id });
      }
      this.onEvent(data);
    });
    socket.addEventListener("close", (event) => {
      if (this.socket !== socket || this.stopped) return;
      this.socket = null;
      this.onState(event.code === 1008 ? "refused" : "reconnecting");
      setTimeout(() => {
        if (!this.stopped) this.connect();
      }, this.retryMs);
      this.retryMs = Math.min(this.retryMs * 2, 15000);
    });
  }
}
