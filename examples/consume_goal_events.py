"""An integrator's consumer: the GoalSet events of one tenant, with plain aiokafka."""

import asyncio
import json
import os
import sys

from aiokafka import AIOKafkaConsumer


async def main(tenant: str, limit: int) -> None:
    consumer = AIOKafkaConsumer(
        os.environ.get("TOPIC_PREFIX", "") + "coaching.goals",
        bootstrap_servers=os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092"),
        group_id=f"{tenant}-datalake", auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        async for record in consumer:
            ce = {k[3:]: v.decode() for k, v in record.headers if k.startswith("ce_")}
            if ce["tenant"] == tenant and ce["type"] == "coaching.GoalSet.v1":
                goal = json.loads(record.value)
                print(ce["id"], ce["subject"], goal["title"], goal["due_date"], flush=True)
                limit -= 1
            await consumer.commit()  # only after our own effect (here: the print) is done
            if limit == 0:
                return
    finally:
        await consumer.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2])))
