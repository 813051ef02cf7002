import { defineConfig } from 'vitest/config'

// The demo runs three servers over TCP (fsync per blob and per index commit): generous timeouts,
// as a slow shared CI machine is not a failure. Nothing here asserts timing.
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
