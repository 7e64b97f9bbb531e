// mocha's spec reporter, closed by one line a script can read: "e2e: N passed, N failed".
const Mocha = require('mocha')

class Summary extends Mocha.reporters.Spec {
  constructor(runner, options) {
    super(runner, options)
    runner.once(Mocha.Runner.constants.EVENT_RUN_END, () => {
      console.log(`e2e: ${runner.stats.passes} passed, ${runner.stats.failures} failed`)
    })
  }
}

module.exports = Summary
