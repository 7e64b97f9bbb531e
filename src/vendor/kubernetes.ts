/**
 * @kubernetes/client-node, as the rest of mlops imports it: the build
 * (scripts/bundle.js) puts the package into a chunk of its own that only the
 * commands that talk to a cluster load (its ~970 module files one by one cost
 * 0.33 s on our machines). Types, tests through tsx and `bin/dev.js` use the
 * package itself.
 */
export * from '@kubernetes/client-node'
