// @ts-check
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.tools/', '.perimeter/', 'coverage/'] },
  {
    files: ['**/*.ts'],
    extends: [...tseslint.configs.recommended],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no Node built-ins, no SDKs that do
    // I/O, no values from src/ or activities/ — only Temporal's API, workflows/ itself and types.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['node:*'], message: 'Node built-ins are not available in workflows.' },
            {
              group: [
                'fs',
                'path',
                'os',
                'crypto',
                'child_process',
                'net',
                'http',
                'https',
                'events',
                'util',
              ],
              message: 'Node built-ins are not available in workflows.',
            },
            {
              group: ['@aws-sdk/*', '@slack/*', '@temporalio/worker', '@temporalio/client'],
              message: 'I/O belongs in activities.',
            },
            {
              regex: '^\\.\\./(src|activities)(/.*)?$',
              allowTypeImports: true,
              message:
                'Workflows import values only from workflows/ and Temporal; types from src/ and activities/ are fine.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
  },
);
