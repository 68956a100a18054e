import { extendZodWithOpenApi } from '@asteasolutions/zod-to-openapi';
import { z } from 'zod';

// Schemas import z from here so `.openapi()` exists whatever the module load order.
extendZodWithOpenApi(z);

export { z };
