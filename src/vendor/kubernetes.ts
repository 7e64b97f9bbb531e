/**
 * @kubernetes/client-node, as the rest of mlops imports it. The build replaces
 * the compiled re-export with one minified bundle of the package
 * (scripts/vendor.js): loading its ~970 module files one by one costs 0.33 s
 * on our machines, the bundle 0.1 s, on every command that talks to a cluster.
 * Types, tests through tsx and `bin/dev.js` use the package itself.
 */
export * from '@kubernetes/client-node'
