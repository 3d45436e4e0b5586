// The live log of pushed events and connection changes, kept for the whole session so the
// dashboard shows history even when it was opened later.

const LIMIT = 300;

export class EventLog {
  constructor() {
    this.entries = [];
    this.listeners = new Set();
    this.nextId = 1;
  }

  /**
   * @param {{kind: 'push'|'system'|'warning'|'error', event: string, data?: *, stream?: string,
   *   offset?: number, text?: string}} entry
   */
  add(entry) {
    const full = { id: this.nextId++, time: new Date(), ...entry };
    this.entries.push(full);
    if (this.entries.length > LIMIT) this.entries.splice(0, this.entries.length - LIMIT);
    for (const fn of this.listeners) fn(full);
    return full;
  }

  clear() {
    this.entries = [];
    for (const fn of this.listeners) fn(null);
  }

  /** fn(entry) for each new entry, fn(null) after clear(); returns an unsubscribe. */
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  }
}
