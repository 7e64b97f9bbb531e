// ESLint flat config: typescript-eslint's recommended rules for the sources,
// tests, benchmarks and scripts; formatting is Prettier's (eslint-config-prettier
// turns off the rules it owns). `npm run lint` runs both; `npm test` runs lint first.
//
// The TypeScript files are linted with their types (typescript-eslint's project service):
// each file is typed by its nearest tsconfig, tsconfig.json for src/, test/tsconfig.json for
// test/, bench/tsconfig.json for bench/ (the root one is the build's, src/ only; without it a
// bench file would get a default project of its own, one program per file). The JavaScript
// files (bin/, scripts/, this file, the test reporter, the port-forward smoke) have no types to
// read and keep the untyped rules. Types cost time: about 8 s → 18 s for `npm run lint` on 2 cores.
import js from '@eslint/js'
import prettier from 'eslint-config-prettier'
import globals from 'globals'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  {ignores: ['dist/', 'node_modules/', 'coverage/', 'oclif.manifest.json', 'src/config/mlops-yaml.ts', 'test/fixtures/']},
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    languageOptions: {
      globals: {...globals.node},
      parserOptions: {projectService: true, tsconfigRootDir: import.meta.dirname},
    },
    rules: {
      // Unused names are errors, except the ones that say so (`_`, `_name`) and rest siblings used to drop a key.
      '@typescript-eslint/no-unused-vars': [
        'error',
        {argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none', ignoreRestSiblings: true},
      ],
      // Lines a reader can take in: Prettier wraps code at 140; strings and comments must stay under this too (after eslint-config-prettier, which would turn it off).
      'max-len': ['error', {code: 200, ignoreUrls: true}],
      eqeqeq: ['error', 'always'],
      'no-console': 'off',

      // Typed rules, picked one by one rather than recommendedTypeChecked: the bugs types can see
      // here are promises (a rejection nobody handles, a step that runs before the one it waits
      // for), so those rules are on. Left off, as noise for this code: the no-unsafe-* family
      // (any from JSON.parse, YAML and the cloud clients is checked by hand field by field),
      // no-base-to-string (String(unknown) on untrusted JSON, validated right after), and
      // require-await (async methods that implement a Promise-returning interface or stub one in
      // a test; dropping their `async` would turn a throw into a synchronous one).
      // A promise is awaited, returned, or detached on purpose with `void` (and a .catch where it can reject).
      '@typescript-eslint/no-floating-promises': 'error',
      // No promise where a callback's return is ignored (an async event listener's rejection is unhandled) or a condition expects a boolean.
      '@typescript-eslint/no-misused-promises': 'error',
      // `await` only on what can be awaited: awaiting a plain value hides a call that was meant to return a promise.
      '@typescript-eslint/await-thenable': 'error',
      // Inside try/catch/finally a returned promise is awaited, or its rejection skips the catch and the finally runs too early.
      '@typescript-eslint/return-await': ['error', 'in-try-catch'],
      // An `as` or `!` that changes nothing hides the day the type changes under it.
      '@typescript-eslint/no-unnecessary-type-assertion': 'error',
    },
  },
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    languageOptions: {globals: {...globals.mocha}},
    rules: {
      // chai's expect(...).to.be.true and friends are expressions.
      '@typescript-eslint/no-unused-expressions': 'off',
      // Parsed CLI output (--json) is read field by field in assertions.
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.cjs', '**/*.mjs'],
    ...tseslint.configs.disableTypeChecked,
  },
  {
    files: ['**/*.cjs'],
    languageOptions: {sourceType: 'commonjs'},
    rules: {'@typescript-eslint/no-require-imports': 'off'},
  },
)
