// ESLint flat config: typescript-eslint's recommended rules for the sources,
// tests, benchmarks and scripts; formatting is Prettier's (eslint-config-prettier
// turns off the rules it owns). `npm run lint` runs both; `npm test` runs lint first.
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
    languageOptions: {globals: {...globals.node}},
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
    files: ['**/*.cjs'],
    languageOptions: {sourceType: 'commonjs'},
    rules: {'@typescript-eslint/no-require-imports': 'off'},
  },
)
