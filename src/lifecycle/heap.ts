/** A binary min-heap of values by numeric priority (ties: any order): the eviction order of LRU. */
export class MinHeap<T> {
  private readonly priorities: number[] = []
  private readonly values: T[] = []

  get size(): number {
    return this.values.length
  }

  push(priority: number, value: T): void {
    let index = this.values.length
    this.priorities.push(priority)
    this.values.push(value)
    while (index > 0) {
      const parent = (index - 1) >> 1
      if ((this.priorities[parent] as number) <= priority) break
      this.swap(index, parent)
      index = parent
    }
  }

  /** The value of least priority, removed; undefined when empty. */
  pop(): T | undefined {
    if (this.values.length === 0) return undefined
    const top = this.values[0]
    const lastIndex = this.values.length - 1
    this.swap(0, lastIndex)
    this.priorities.pop()
    this.values.pop()
    let index = 0
    for (;;) {
      const left = 2 * index + 1
      const right = left + 1
      let least = index
      if (left < this.values.length && (this.priorities[left] as number) < (this.priorities[least] as number)) least = left
      if (right < this.values.length && (this.priorities[right] as number) < (this.priorities[least] as number)) least = right
      if (least === index) return top
      this.swap(index, least)
      index = least
    }
  }

  private swap(a: number, b: number): void {
    ;[this.priorities[a], this.priorities[b]] = [this.priorities[b] as number, this.priorities[a] as number]
    ;[this.values[a], this.values[b]] = [this.values[b] as T, this.values[a] as T]
  }
}
