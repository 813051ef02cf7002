// A virtualizer (@tanstack/virtual-core) bound to a Preact component: only the rows in view exist in
// the page, so a folder of a hundred thousand keys scrolls as fast as one of ten.
import { Virtualizer, elementScroll, observeElementOffset, observeElementRect } from '@tanstack/virtual-core'
import { useLayoutEffect, useReducer, useState } from 'preact/hooks'

/** Rows of `rowHeight` pixels in the scrolling element `scroller()`. */
export function useVirtualRows(count: number, scroller: () => HTMLElement | null, rowHeight: number): Virtualizer<HTMLElement, Element> {
  const [, rerender] = useReducer((n: number) => n + 1, 0)
  const options = {
    count,
    getScrollElement: scroller,
    estimateSize: () => rowHeight,
    scrollToFn: elementScroll,
    observeElementRect,
    observeElementOffset,
    overscan: 12,
    onChange: () => rerender(undefined),
  }
  const [virtualizer] = useState(() => new Virtualizer<HTMLElement, Element>(options))
  virtualizer.setOptions(options)
  useLayoutEffect(() => virtualizer._didMount(), [virtualizer])
  useLayoutEffect(() => virtualizer._willUpdate())
  return virtualizer
}
