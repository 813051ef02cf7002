import { defineConfig } from 'vitest/config'

// Server tests run whole clusters (fsync per blob and per index commit): generous timeouts,
// as a slow shared CI machine is not a failure. Nothing here asserts timing.
export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
})
