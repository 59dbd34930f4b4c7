/**
 * An array-backed FIFO for the writer's queue: take(n) is O(n) in what it
 * returns, not in what stays queued (Array#shift/splice at the front would
 * move the whole backlog for every batch). The consumed prefix is dropped in
 * chunks once it is at least half the array.
 */
export class Fifo<T> {
  private items: T[] = [];
  private start = 0;

  get size(): number {
    return this.items.length - this.start;
  }

  push(item: T): void {
    this.items.push(item);
  }

  /** Removes and returns up to n items from the front. */
  take(n: number): T[] {
    const end = Math.min(this.items.length, this.start + n);
    const out = this.items.slice(this.start, end);
    this.start = end;
    if (this.start >= 4096 && this.start * 2 >= this.items.length) {
      this.items = this.items.slice(this.start);
      this.start = 0;
    }
    return out;
  }

  /** Removes and returns everything. */
  takeAll(): T[] {
    return this.take(this.size);
  }
}
